"""Expressions on whole photos: detect faces (`ferops.runtime.faces`), crop them (`ferops.runtime.decode`),
classify the crops with a bundle (`ferops.runtime.BundleModel`). Numpy + LiteRT + Pillow only.

>>> FacePredictor("outputs/export/bundle").predict("photo.jpg")            # doctest: +SKIP
[{"box": [x, y, w, h], "score": 0.94, "label": "happy", "probs": {"angry": 0.01, ...}}]

`predict_files` is ``ferops predict``'s loop over files and folders: one JSON line per image
(``{"file", "faces", "width", "height"}``, or ``{"file", "error"}``), annotated copies (`annotate`);
video files (`VIDEO_SUFFIXES`) go through `ferops.runtime.video.predict_video`, one line a frame.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ferops.runtime.bundle import BundleModel
from ferops.runtime.decode import ImageDecodeError, array_to_image, check_pixels, crop_faces, open_image, to_rgb
from ferops.runtime.faces import DEFAULT_DETECTOR, DEFAULT_MIN_SCORE, Face, make_detector

if TYPE_CHECKING:
    from ferops.runtime.video import VideoOptions

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_SUFFIXES",
    "VIDEO_SUFFIXES",
    "FacePredictor",
    "PhotoPrediction",
    "PredictSummary",
    "annotate",
    "annotated_path",
    "iter_image_files",
    "predict_files",
]

# Refused before decoding: a 64-megapixel photo is larger than any phone camera's default output,
# while a small file claiming more (a decompression bomb) would need gigabytes of memory.
DEFAULT_MAX_PIXELS = 64_000_000
# What a folder is searched for (files named on the command line are always tried).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pnm"})
# Read frame by frame with OpenCV/FFmpeg (`ferops.runtime.video`), named or found in a folder.
VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp"})

ImageInput = str | os.PathLike[str] | bytes | Image.Image | np.ndarray
ColorOrder = Literal["rgb", "bgr"]


@dataclass
class PhotoPrediction:
    """One photo: its upright RGB image, size, and the faces (dicts as `FacePredictor.predict`)."""

    image: Image.Image
    faces: list[dict[str, Any]]

    @property
    def width(self) -> int:
        return self.image.width

    @property
    def height(self) -> int:
        return self.image.height


# The trained FER2013 int8 bundle that travels in the package (MODEL_CARD.md beside it): what
# FacePredictor() and `ferops predict` run when no bundle is named.
SHIPPED_BUNDLE = Path(__file__).with_name("shipped_bundle")


class FacePredictor:
    """``FacePredictor([bundle_dir]).predict(image)`` (default: :data:`SHIPPED_BUNDLE`) -> one dict a face, best detector score first:
    ``{"box": [x, y, w, h], "score": detector score, "label": class, "probs": {class: p}}``.

    ``image``: a file path, encoded bytes, a PIL image, or a numpy array; a colour array needs
    ``color_order="rgb"`` or ``"bgr"`` (OpenCV), said explicitly. Files and bytes above
    ``max_pixels`` are refused before decoding (`ImageDecodeError`)."""

    def __init__(
        self,
        bundle_dir: str | os.PathLike[str] | None = None,
        *,
        detector: str = DEFAULT_DETECTOR,
        min_score: float = DEFAULT_MIN_SCORE,
        min_face: int = 0,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        num_threads: int = 1,
        reject_unknown: bool | None = None,
        detector_path: str | os.PathLike[str] | None = None,
        tta: str | None = None,
    ):
        """``detector_path``: the detector's weights file (e.g. a copy vendored with a served model)
        instead of the installed one. ``tta``: the bundle's test-time augmentation (None: its metadata's)."""
        bundle = SHIPPED_BUNDLE if bundle_dir is None else Path(bundle_dir)
        self.model = BundleModel(bundle, num_threads=num_threads, reject_unknown=reject_unknown, tta=tta)
        self.detector = make_detector(
            detector, min_score=min_score, min_face=min_face, num_threads=num_threads, model_path=detector_path
        )
        self.max_pixels = int(max_pixels)

    @property
    def class_names(self) -> list[str]:
        return self.model.class_names

    def load_rgb(self, image: ImageInput, color_order: ColorOrder | None = None) -> Image.Image:
        """Any accepted input -> an upright RGB PIL image (`ferops.runtime.decode` rules)."""
        if isinstance(image, (str, os.PathLike, bytes)):
            with open_image(image, max_pixels=self.max_pixels) as img:
                return to_rgb(img)
        if isinstance(image, Image.Image):
            check_pixels(image.width, image.height, self.max_pixels)
            return to_rgb(image)
        if isinstance(image, np.ndarray):
            colour = image.ndim == 3 and image.shape[-1] in (3, 4)
            if colour and color_order not in ("rgb", "bgr"):
                raise ValueError(f"a colour array needs color_order='rgb' or 'bgr', got {color_order!r}")
            if image.ndim >= 2:
                check_pixels(int(image.shape[1]), int(image.shape[0]), self.max_pixels)
            return to_rgb(array_to_image(image, bgr=color_order == "bgr"))
        raise TypeError(f"expected a path, bytes, a PIL image or a numpy array, got {type(image).__name__}")

    def face_crops(self, rgb: Image.Image) -> tuple[list[Face], np.ndarray]:
        """The faces of an upright RGB image and their model input, uint8 ``[N, size, size]``, cut
        with the detector's measured margin (`ferops.runtime.decode.crop_faces`)."""
        faces = self.detector.detect(np.asarray(rgb))
        size = self.model.image_size[0]
        if not faces:
            return [], np.zeros((0, size, size), np.uint8)
        spec = self.detector.spec
        return faces, crop_faces(rgb.convert("L"), [f.box for f in faces], spec.crop_margin, spec.crop_shift_up, size)

    def predict_rgb(self, rgb: Image.Image) -> list[dict[str, Any]]:
        """Faces of an upright RGB image (what `load_rgb` returns)."""
        faces, crops = self.face_crops(rgb)
        if not faces:
            return []
        probs, labels = self.model.predict(crops)
        return [
            {
                "box": list(face.box),
                "score": round(face.score, 4),
                "label": label,
                "probs": {name: round(float(p), 4) for name, p in zip(self.class_names, row)},
            }
            for face, label, row in zip(faces, labels, probs)
        ]

    def predict_photo(self, image: ImageInput, color_order: ColorOrder | None = None) -> PhotoPrediction:
        rgb = self.load_rgb(image, color_order)
        return PhotoPrediction(rgb, self.predict_rgb(rgb))

    def predict(self, image: ImageInput, color_order: ColorOrder | None = None) -> list[dict[str, Any]]:
        return self.predict_photo(image, color_order).faces


def annotate(image: Image.Image, faces: Sequence[dict[str, Any]]) -> Image.Image:
    """A copy of ``image`` with each face's box, label and a small bar a class (its probability)."""
    out = image.convert("RGB")
    draw = ImageDraw.Draw(out)
    for face in faces:
        x, y, w, h = face["box"]
        line = max(2, round(w / 60))
        font_px = max(10, round(w / 10))
        font = ImageFont.load_default(size=font_px)
        draw.rectangle((x, y, x + w, y + h), outline=(0, 255, 0), width=line)
        top = float(face["probs"].get(face["label"], max(face["probs"].values())))
        text = f"{face['label']} {top:.2f}"
        draw.rectangle((x, max(0, y - font_px - 4), x + w, y), fill=(0, 0, 0))
        draw.text((x + 2, max(0, y - font_px - 3)), text, fill=(255, 255, 255), font=font)
        # the probability bars, one row a class, below the box
        row_h = max(4, round(font_px * 0.6))
        small = ImageFont.load_default(size=max(8, row_h - 1))
        for i, (name, p) in enumerate(face["probs"].items()):
            ry = y + h + 2 + i * (row_h + 1)
            draw.rectangle((x, ry, x + w, ry + row_h), fill=(40, 40, 40))
            draw.rectangle((x, ry, x + round(w * float(p)), ry + row_h), fill=(0, 200, 255))
            draw.text((x + 2, ry), name, fill=(255, 255, 255), font=small)
    return out


def iter_image_files(
    paths: Iterable[str | os.PathLike[str]], suffixes: frozenset[str] = IMAGE_SUFFIXES
) -> Iterator[tuple[Path, Path]]:
    """``(file, name for outputs)`` for each path: a file as itself; a folder's files with one of
    ``suffixes`` (images; `predict_files` adds `VIDEO_SUFFIXES`), recursively, sorted, named relative
    to the folder. A missing path is yielded too, so that its error is reported like any other."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for f in sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in suffixes):
                yield f, f.relative_to(path)
        else:
            yield path, Path(path.name)


@dataclass
class PredictSummary:
    """Counts of a ``ferops predict`` run; ``seconds`` is decoding + prediction time (not writing), ``failed``
    counts images and videos, ``interrupted`` is set by Ctrl-C."""

    images: int = 0
    failed: int = 0
    faces: int = 0
    seconds: float = 0.0
    videos: int = 0
    frames: int = 0
    interrupted: bool = False

    @property
    def faces_per_s(self) -> float:
        return self.faces / self.seconds if self.seconds > 0 else 0.0

    def show(self, bar: Any) -> None:
        """One more input (a file, or a video's frame) done on the tqdm ``bar``, with the running faces/s."""
        bar.update(1)
        bar.set_postfix(faces=self.faces, faces_per_s=f"{self.faces_per_s:.1f}")

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        inputs = [f"{self.images} images"] if self.images or not self.videos else []
        if self.videos:
            inputs.append(f"{self.videos} videos ({self.frames} frames)")
        rate = f"{self.faces_per_s:.1f} faces/s" + (f", {self.frames_per_s:.1f} frames/s" if self.frames else "")
        return f"{', '.join(inputs)} ({self.failed} failed), {self.faces} faces in {self.seconds:.2f} s: {rate}" + (
            " (interrupted)" if self.interrupted else ""
        )


def annotated_path(out_dir: Path, name: Path) -> Path:
    """Where ``--out`` writes the annotated copy of input ``name``: JPEG, PNG and MP4 keep their name;
    other images are written as PNG, other videos as MP4, beside them (``clip.avi`` -> ``clip.avi.mp4``)."""
    if name.suffix.lower() in VIDEO_SUFFIXES:
        return out_dir / (name if name.suffix.lower() == ".mp4" else name.with_name(name.name + ".mp4"))
    return out_dir / (name if name.suffix.lower() in (".jpg", ".jpeg", ".png") else name.with_name(name.name + ".png"))


def predict_files(
    predictor: FacePredictor,
    paths: Sequence[str | os.PathLike[str]],
    json_out: IO[str],
    out_dir: Path | None = None,
    on_error: Callable[[Path, str], None] | None = None,
    progress: bool = False,
    video: VideoOptions | None = None,
) -> PredictSummary:
    """``ferops predict``: each image -> one JSON line on ``json_out`` and, with ``out_dir``, an
    annotated copy (`annotated_path`); each video (`VIDEO_SUFFIXES`) -> one line a frame and an
    annotated ``.mp4`` (`ferops.runtime.video.predict_video` with the ``video`` options). A file that
    cannot be read or decoded gets ``{"file", "error"}`` and ``on_error(file, reason)``; the run goes
    on. Ctrl-C stops it (``summary.interrupted``), keeping what was written."""
    from ferops.runtime.video import VideoError, open_video, predict_video  # video imports this module

    files = list(iter_image_files(paths, IMAGE_SUFFIXES | VIDEO_SUFFIXES))
    summary = PredictSummary()
    bar = None
    if progress and len(files) > 1:  # videos show their own bar over frames
        from tqdm.auto import tqdm

        bar = tqdm(total=len(files), unit="file", desc="predict")
    try:
        for file, name in files:
            is_video = file.suffix.lower() in VIDEO_SUFFIXES
            start = time.perf_counter()
            try:
                if is_video:
                    summary.videos += 1
                    target = annotated_path(out_dir, name) if out_dir is not None else None
                    with open_video(file) as source:
                        predict_video(predictor, source, json_out, summary, video, target, progress)
                else:
                    summary.images += 1
                    photo = predictor.predict_photo(file)
            except (ImageDecodeError, VideoError, OSError, ValueError) as err:
                reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
                summary.failed += 1
                json_out.write(json.dumps({"file": str(file), "error": reason}) + "\n")
                if on_error is not None:
                    on_error(file, reason)
            else:
                if not is_video:
                    summary.seconds += time.perf_counter() - start
                    summary.faces += len(photo.faces)
                    record = {"file": str(file), "faces": photo.faces, "width": photo.width, "height": photo.height}
                    json_out.write(json.dumps(record) + "\n")
                    if out_dir is not None:
                        target = annotated_path(out_dir, name)
                        target.parent.mkdir(parents=True, exist_ok=True)
                        annotate(photo.image, photo.faces).save(target)
            if summary.interrupted:  # Ctrl-C inside a video's frame loop
                break
            if bar is not None:
                summary.show(bar)
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        if bar is not None:
            bar.close()
    return summary
