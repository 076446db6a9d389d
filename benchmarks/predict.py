"""Face detectors and the end-to-end photo pipeline, timed on one thread (markdown tables).

    OMP_NUM_THREADS=1 python benchmarks/predict.py --photos ../shared/data/photos
    OMP_NUM_THREADS=1 python benchmarks/predict.py --model outputs/export/bundle --fp32-model outputs/export/exports/model_fp32.tflite
    python benchmarks/predict.py --fer2013 ../shared/data/fer2013/fer2013.csv.gz   # the crop margin per detector

Detector table, for each of `ferops.runtime.faces.DETECTORS`: with ``--photos``, the boxes found in
each photo (compare them with the photos' README for faces present and false positives), then the
median time of ``detect`` on a 640x480 frame holding one face.

End-to-end table: 640x480 frames holding the scikit-image astronaut's face 1, 2, 3 and 4 times (the
same 150 px head tile each time, so only the count changes), JPEG-encoded; the median time of each
step `FacePredictor` takes (decode the JPEG bytes, detect, crop, classify) and of the whole
``FacePredictor.predict(jpeg_bytes)`` (total). For the int8 bundle (``--model``, default: the one
shipped in the package) and, with ``--fp32-model``, the fp32 TFLite model exported beside it (the
export chain writes ``exports/model_fp32.tflite``), run as a copy of the bundle with that model.

``--fer2013``: the measurement behind each detector's ``crop_margin`` / ``crop_shift_up``: 600 FER2013
faces (every 35th row), each edge-padded to 96x96 (context, as in a photo) and upscaled to 192;
the median box side and centre offset relative to the original 48x48 crop.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from ferops.runtime.bundle import LABELS_FILE, METADATA_FILE, TTA_VIEWS
from ferops.runtime.decode import crop_faces, open_image, to_rgb
from ferops.runtime.faces import DEFAULT_DETECTOR, DEFAULT_MIN_SCORE, DETECTORS, make_detector
from ferops.runtime.predictor import SHIPPED_BUNDLE, FacePredictor, iter_image_files
from ferops.runtime.tflite import TFLiteModel

FRAME_W, FRAME_H = 640, 480
TILE = 150  # px: four head tiles side by side fit the 640 px frame; the face is about 75 px
ASTRONAUT_HEAD = (121, 17, 331, 227)  # a square of twice the face box (174, 70, 105, 105) around it


def _frame(n_faces: int = 1) -> np.ndarray:
    """640x480 grey frame with ``n_faces`` copies of the astronaut's head (public domain, in
    scikit-image) side by side, centred."""
    from skimage.data import astronaut

    head = np.asarray(Image.fromarray(astronaut()).crop(ASTRONAUT_HEAD).resize((TILE, TILE), Image.Resampling.BILINEAR))
    frame = np.full((FRAME_H, FRAME_W, 3), 90, np.uint8)
    pitch = FRAME_W // 4
    left = (FRAME_W - n_faces * pitch) // 2 + (pitch - TILE) // 2
    top = (FRAME_H - TILE) // 2
    for i in range(n_faces):
        frame[top : top + TILE, left + i * pitch : left + i * pitch + TILE] = head
    return frame


def _jpeg(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _median_ms(fn: Callable[[], object], runs: int) -> float:
    for _ in range(5):
        fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def _load_average() -> str:
    return "load average " + ", ".join(f"{v:.2f}" for v in os.getloadavg()) + f" ({os.cpu_count()} CPUs)"


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def fer2013_crop_geometry(csv_path: Path, every: int = 35, n: int = 600) -> None:
    import csv
    import gzip

    faces = []
    with gzip.open(csv_path, "rt") if csv_path.suffix == ".gz" else open(csv_path) as fh:
        for i, row in enumerate(csv.DictReader(fh)):
            if i % every == 0:
                faces.append(np.array(row["pixels"].split(), dtype=np.uint8).reshape(48, 48))
            if len(faces) >= n:
                break
    for name in DETECTORS:
        det = make_detector(name)
        sides, dys = [], []
        for face in faces:
            padded = Image.fromarray(np.pad(face, 24, mode="edge")).resize((192, 192), Image.Resampling.BILINEAR)
            found = det.detect(np.asarray(padded.convert("RGB")))
            if found:  # the detection nearest the centre; 192 px = 2 x the 96 px padded face
                _x, y, w, h = min(found, key=lambda f: abs(f.box[0] + f.box[2] / 2 - 96) + abs(f.box[1] + f.box[3] / 2 - 96)).box
                sides.append(max(w, h) / 2)
                dys.append((y + h / 2) / 2 - 48)
        side, dy = statistics.median(sides), statistics.median(dys)
        print(
            f"{name}: found {len(sides)}/{len(faces)}, median box side {side:.1f} of 48 px, centre {dy:.2f} px below: "
            f"crop_margin {48 / side - 1:.3f}, crop_shift_up {dy / side:.3f}"
        )


def detector_table(photos: Path | None, runs: int, min_score: float) -> str:
    """Boxes per photo (printed as found) and the detector table."""
    frame = _frame(1)
    rows = []
    for name in DETECTORS:
        det = make_detector(name, min_score=min_score, num_threads=1)
        boxes_on_photos = "-"
        if photos:
            boxes = 0
            for file, _ in iter_image_files([photos]):
                with open_image(file) as img:
                    rgb = to_rgb(img)
                faces = det.detect(np.asarray(rgb))
                boxes += len(faces)
                print(f"{name:5s} {file.name:14s} {rgb.width}x{rgb.height}: {[(f.box, round(f.score, 4)) for f in faces]}")
            boxes_on_photos = str(boxes)
        ms = _median_ms(lambda d=det: d.detect(frame), runs)
        rows.append([name, boxes_on_photos, str(len(det.detect(frame))), f"{ms:.1f}", f"{1000 / ms:.0f}"])
    header = ["detector", "boxes on the photos", "faces in the 640x480 frame", "detect ms (1 thread)", "frames/s"]
    return _markdown(header, rows)


def fp32_bundle(bundle: Path, fp32_model: Path, into: Path) -> Path:
    """A copy of ``bundle`` (classes, post-processing) whose model is ``fp32_model``: the metadata's
    input/output are rewritten from the model so that `BundleModel` loads it like the int8 one."""
    model = TFLiteModel(fp32_model)
    meta = json.loads((bundle / METADATA_FILE).read_text(encoding="utf-8"))
    meta["model_file"] = fp32_model.name
    for key, spec in (("input", model.input), ("output", model.output)):
        quantization = {"scale": spec.scale, "zero_point": spec.zero_point}
        meta[key] = {**meta[key], "shape": list(spec.shape), "dtype": np.dtype(spec.dtype).name, "quantization": quantization}
    shutil.copy(fp32_model, into / fp32_model.name)
    shutil.copy(bundle / LABELS_FILE, into / LABELS_FILE)
    (into / METADATA_FILE).write_text(json.dumps(meta), encoding="utf-8")
    return into


def _step_ms(pred: FacePredictor, jpeg: bytes, runs: int) -> tuple[int, list[float]]:
    """Faces found in the JPEG frame, and the median ms of each `FacePredictor` step (decode, detect,
    crop, classify) and of the whole ``predict``."""
    rgb = pred.load_rgb(jpeg)
    pixels = np.asarray(rgb)
    boxes = [f.box for f in pred.detector.detect(pixels)]
    spec, size = pred.detector.spec, pred.model.image_size[0]
    crop = lambda: crop_faces(rgb.convert("L"), boxes, spec.crop_margin, spec.crop_shift_up, size)
    crops = crop()
    return len(boxes), [
        _median_ms(lambda: pred.load_rgb(jpeg), runs),
        _median_ms(lambda: pred.detector.detect(pixels), runs),
        _median_ms(crop, runs),
        _median_ms(lambda: pred.model.predict(crops), runs) if boxes else 0.0,
        _median_ms(lambda: pred.predict(jpeg), runs),
    ]


def end_to_end_table(
    bundles: dict[str, Path], detector: str, runs: int, min_score: float, ttas: tuple[str, ...] = tuple(TTA_VIEWS)
) -> str:
    """Per model, test-time augmentation (`ferops.runtime.bundle.TTA_VIEWS`) and face count: the
    median ms of each `FacePredictor` step and of the whole call."""
    rows = []
    for label, bundle in bundles.items():
        for tta in ttas:
            pred = FacePredictor(bundle, detector=detector, min_score=min_score, num_threads=1, tta=tta)
            for n_faces in (1, 2, 3, 4):
                found, ms = _step_ms(pred, _jpeg(_frame(n_faces)), runs)
                rows.append([label, tta, f"{n_faces} ({found})", *(f"{v:.2f}" for v in ms), f"{1000 / ms[-1]:.0f}"])
    header = ["model", "TTA", "faces (found)", "decode ms", "detect ms", "crop ms", "classify ms", "total ms", "frames/s"]
    return _markdown(header, rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--photos", type=Path, help="folder of photos to list detections for")
    p.add_argument("--model", type=Path, default=SHIPPED_BUNDLE, help="int8 bundle directory (default: the shipped one)")
    p.add_argument("--fp32-model", type=Path, help="the fp32 .tflite exported with that bundle: also time it end to end")
    p.add_argument("--detector", choices=DETECTORS, default=DEFAULT_DETECTOR, help="detector of the end-to-end table")
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--min-score", type=float, default=DEFAULT_MIN_SCORE)
    p.add_argument("--fer2013", type=Path, help="FER2013 CSV (.csv or .csv.gz): measure the crop geometry instead")
    args = p.parse_args(argv)
    if args.fer2013:
        fer2013_crop_geometry(args.fer2013)
        return 0

    print(f"start: {_load_average()}")
    print(detector_table(args.photos, args.runs, args.min_score), end="\n\n")
    with tempfile.TemporaryDirectory() as tmp:
        bundles = {"int8": args.model}
        if args.fp32_model:
            bundles["fp32"] = fp32_bundle(args.model, args.fp32_model, Path(tmp))
        print(end_to_end_table(bundles, args.detector, args.runs, args.min_score))
    print(f"\nend: {_load_average()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
