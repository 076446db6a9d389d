"""``python -m ferops.export``: checkpoint + data arrays -> exports/, metrics.json, bundle/.

    python -m ferops.export --checkpoint outputs/train/best.ckpt --data data/prepared/fer.npz --out outputs/export
    python -m ferops.export ... --set n_latency_runs=500 --set gates.max_int8_acc_drop_points=0.5

``--data`` is an ``.npz`` with ``images`` (uint8 [N, 48, 48]), ``labels`` (int, already in the model's
class ids) and optionally ``usage`` (train/val/test per row): calibration images come from
``--calib-usage`` rows, scores from ``--eval-usage`` rows. Without ``usage``, give the calibration
images as a second ``.npz`` with ``--calib-data``. Exit code 2 when an export gate fails.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("ferops.export")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ferops.export", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="Lightning checkpoint (ferops.models.checkpoint.load_deployable)")
    p.add_argument("--data", required=True, type=Path, help=".npz with images, labels[, usage]")
    p.add_argument(
        "--calib-data",
        type=Path,
        default=None,
        help=".npz with calibration images/labels (default: --data rows of --calib-usage)",
    )
    p.add_argument("--eval-usage", default="test", help="usage value of the rows to score (default: test)")
    p.add_argument("--calib-usage", default="train", help="usage value of the calibration rows (default: train)")
    p.add_argument("--out", required=True, type=Path, help="output directory (exports/, metrics.json, bundle/)")
    p.add_argument(
        "--config",
        type=Path,
        default=None,
        help="export options YAML, over the built-in ExportConfig defaults (which conf/export/default.yaml is generated from)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override an option, e.g. gates.max_int8_acc_drop_points=0.5",
    )
    p.add_argument("--run-id", default=None, help="MLflow run id recorded in the bundle's lineage")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars, warnings only")
    return p


def load_config(path: Path | None, overrides: list[str]) -> dict[str, Any]:
    """ExportConfig's defaults, then the ``--config`` YAML (if given), then the ``--set`` overrides.
    No conf/ lookup: an installed package has none, and conf/export/default.yaml is generated from
    those same defaults."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    base: DictConfig | ListConfig
    if path is None:
        base = OmegaConf.create({})
        log.info(
            "export options: built-in ExportConfig defaults%s", f" + {len(overrides)} --set override(s)" if overrides else ""
        )
    elif not path.is_file():  # a mistyped --config must not silently mean "the defaults"
        raise SystemExit(f"--config {path}: no such file")
    else:
        base = OmegaConf.load(path)
        log.info("export options: %s over the built-in ExportConfig defaults", path)
    merged = OmegaConf.merge(base, OmegaConf.from_dotlist(list(overrides)))
    return OmegaConf.to_container(merged, resolve=True)  # type: ignore[return-value]


def load_model(checkpoint: str):
    from ferops.models.checkpoint import load_deployable

    return load_deployable(checkpoint)


def _split(path: Path, usage: str | None) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        images, labels = z["images"], z["labels"]
        if usage is not None and "usage" in z.files:
            keep = z["usage"].astype(str) == usage
            if not keep.any():
                raise SystemExit(f"{path}: no rows with usage={usage!r}")
            images, labels = images[keep], labels[keep]
    return images, labels


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    cfg = load_config(args.config, args.set)
    if args.quiet:
        cfg["progress"] = False

    from ferops.export import ExportGateError, run_export
    from ferops.export.report import render_markdown

    with np.load(args.data, allow_pickle=False) as z:
        has_usage = "usage" in z.files
    if args.calib_data is None and not has_usage:
        raise SystemExit(f"{args.data} has no 'usage' column: pass the calibration images with --calib-data")
    eval_x, eval_y = _split(args.data, args.eval_usage if has_usage else None)
    calib_x, calib_y = _split(args.calib_data, args.calib_usage) if args.calib_data else _split(args.data, args.calib_usage)

    model, meta = load_model(args.checkpoint)
    source = {"checkpoint": str(args.checkpoint)}
    if args.run_id:
        source["run_id"] = args.run_id
    try:
        report = run_export(model, meta, calib_x, calib_y, eval_x, eval_y, args.out, cfg, source=source)
    except ExportGateError as err:
        print(render_markdown(err.report) if err.report else "", file=sys.stderr)
        print(str(err), file=sys.stderr)
        return 2
    print(render_markdown(report))
    print(json.dumps({"metrics": str(args.out / "metrics.json"), "bundle": report["bundle_dir"]}))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
