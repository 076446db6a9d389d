"""CPU latency per face (batch 1) for each export format.

    python benchmarks/latency.py --export-dir outputs/export/exports            # ONNX + fp32/int8 TFLite
    python benchmarks/latency.py --export-dir outputs/export/exports --checkpoint best.ckpt   # + PyTorch
    python benchmarks/latency.py --checkpoint best.ckpt                         # converts to a temp dir first
    python benchmarks/latency.py --bundle outputs/export/bundle --image face.jpg --threads 4

With ``--checkpoint`` alone the model is converted on the fly (ONNX -> onnx2tf -> int8 calibrated on
random pixels: the int8 numbers are for timing only, not accuracy). Only the forward call is timed
(see ferops.export.latency); the table gives median / p95 / mean over ``--runs`` runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--export-dir", type=Path, help="directory with model.onnx / model_fp32.tflite / model_int8.tflite")
    p.add_argument("--checkpoint", help="Lightning checkpoint: adds PyTorch (and converts when no --export-dir)")
    p.add_argument("--bundle", type=Path, help="deployment bundle directory: times its model_int8.tflite")
    p.add_argument("--image", type=Path, help="face image to time on (default: random 48x48 pixels)")
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args(argv)
    if not (args.export_dir or args.checkpoint or args.bundle):
        p.error("give --export-dir, --checkpoint and/or --bundle")

    from ferops.export.latency import tflite_latency
    from ferops.runtime.preprocess import prepare_face

    face = None
    if args.image:
        from PIL import Image

        face = prepare_face(Image.open(args.image))
    kw = {"threads": args.threads, "n_runs": args.runs, "n_warmup": args.warmup}
    results: dict[str, dict] = {}
    sizes: dict[str, int] = {}

    model = None
    export_dir = args.export_dir
    tmp = None
    if args.checkpoint:
        from ferops.export.latency import torch_latency
        from ferops.models.checkpoint import load_deployable

        model, _meta = load_deployable(args.checkpoint)
        results["pytorch"] = torch_latency(model, face, **kw)
        if export_dir is None:
            tmp = tempfile.TemporaryDirectory(prefix="ferops-latency-")
            export_dir = _convert(model, Path(tmp.name))
    if export_dir is not None:
        from ferops.export.latency import onnx_latency

        for name, fname, fn in (
            ("onnx", "model.onnx", onnx_latency),
            ("tflite_fp32", "model_fp32.tflite", tflite_latency),
            ("tflite_int8", "model_int8.tflite", tflite_latency),
        ):
            path = export_dir / fname
            if path.is_file():
                results[name] = fn(path, face, **kw)
                sizes[name] = path.stat().st_size
    if args.bundle:
        path = args.bundle / "model_int8.tflite"
        results["bundle_int8"] = tflite_latency(path, face, **kw)
        sizes["bundle_int8"] = path.stat().st_size
    if not results:
        print("no model files found", file=sys.stderr)
        return 1

    print(f"CPU latency per face, batch 1, {args.threads} thread(s), {args.runs} runs")
    print(f"{'format':<14}{'median ms':>11}{'p95 ms':>10}{'mean ms':>10}{'size KiB':>10}")
    for name, r in results.items():
        size = f"{sizes[name] / 1024:.1f}" if name in sizes else "-"
        print(f"{name:<14}{r['median_ms']:>11.3f}{r['p95_ms']:>10.3f}{r['mean_ms']:>10.3f}{size:>10}")
    if args.json:
        args.json.write_text(json.dumps({"threads": args.threads, "results": results, "size_bytes": sizes}, indent=2) + "\n")
    if tmp is not None:
        tmp.cleanup()
    return 0


def _convert(model, out: Path) -> Path:
    """ONNX -> onnx2tf -> int8 (random-pixel calibration: timing only)."""
    from ferops.export.onnx import export_onnx
    from ferops.export.tensorflow import onnx_to_tensorflow
    from ferops.export.tflite import quantize_int8

    onnx_path = export_onnx(model, out / "model.onnx")
    tf_art = onnx_to_tensorflow(onnx_path, out / "saved_model", float32_tflite=out / "model_fp32.tflite")
    calib = np.random.default_rng(0).integers(0, 256, (32, 48, 48), dtype=np.uint8)
    quantize_int8(tf_art.saved_model_dir, calib, out / "model_int8.tflite")
    return out


if __name__ == "__main__":
    sys.exit(main())
