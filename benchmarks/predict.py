"""Face detector table: faces found per photo and detection speed at 640x480 on one thread.

    OMP_NUM_THREADS=1 python benchmarks/predict.py --photos ../shared/data/photos
    OMP_NUM_THREADS=1 python benchmarks/predict.py --photos DIR --model outputs/export/bundle   # + end-to-end
    python benchmarks/predict.py --fer2013 ../shared/data/fer2013/fer2013.csv.gz   # the crop margin per detector

For each BlazeFace model (`ferops.runtime.faces`): the boxes found in each photo (compare them with
the photos' README for faces present and false positives), then the median time of ``detect`` on a
640x480 frame holding the scikit-image astronaut's face, and with ``--model`` the end-to-end
``FacePredictor.predict_rgb`` (detect + crop + classify) on the same frame.

``--fer2013``: the measurement behind each detector's ``crop_margin`` / ``crop_shift_up``: 600 FER2013
faces (every 35th row), each edge-padded to 96x96 (context, as in a photo) and upscaled to 192;
the median box side and centre offset relative to the original 48x48 crop.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from ferops.runtime.decode import open_image, to_rgb
from ferops.runtime.faces import BLAZEFACE_MODELS, FaceDetector
from ferops.runtime.predictor import FacePredictor, iter_image_files


def _frame() -> np.ndarray:
    """640x480 grey frame with the astronaut (public domain, in scikit-image) scaled to 320 px."""
    from skimage.data import astronaut

    frame = np.full((480, 640, 3), 90, np.uint8)
    frame[80:400, 160:480] = np.asarray(Image.fromarray(astronaut()).resize((320, 320), Image.Resampling.BILINEAR))
    return frame


def _median_ms(fn: Callable[[], object], runs: int) -> float:
    for _ in range(5):
        fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


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
    for name in sorted(BLAZEFACE_MODELS):
        det = FaceDetector(name)
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--photos", type=Path, help="folder of photos to list detections for")
    p.add_argument("--model", type=Path, help="bundle directory: also time detect + crop + classify")
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--min-score", type=float, default=0.5)
    p.add_argument("--fer2013", type=Path, help="FER2013 CSV (.csv or .csv.gz): measure the crop geometry instead")
    args = p.parse_args(argv)
    if args.fer2013:
        fer2013_crop_geometry(args.fer2013)
        return 0

    frame = _frame()
    rgb_frame = Image.fromarray(frame)
    rows = []
    for name in sorted(BLAZEFACE_MODELS):
        det = FaceDetector(name, min_score=args.min_score, num_threads=1)
        if args.photos:
            for file, _ in iter_image_files([args.photos]):
                with open_image(file) as img:
                    rgb = to_rgb(img)
                faces = det.detect(np.asarray(rgb))
                print(f"{name:5s} {file.name:14s} {rgb.width}x{rgb.height}: {[(f.box, round(f.score, 2)) for f in faces]}")
        ms = _median_ms(lambda d=det: d.detect(frame), args.runs)
        found = len(det.detect(frame))
        row = f"| {name} | {found} | {ms:.2f} | {1000 / ms:.0f} |"
        if args.model:
            pred = FacePredictor(args.model, detector=name, min_score=args.min_score)
            e2e = _median_ms(lambda pr=pred: pr.predict_rgb(rgb_frame), args.runs)
            row += f" {e2e:.2f} | {1000 / e2e:.0f} |"
        rows.append(row)
    header = "| detector | faces in frame | detect ms (640x480, 1 thread) | frames/s |"
    if args.model:
        header += " detect+crop+classify ms | frames/s |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
