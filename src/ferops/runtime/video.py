"""Expressions on video files and cameras: frames read with OpenCV, faces found and classified by
`FacePredictor`, and followed over time by `FaceTracker`.

Tracks. Each frame's boxes are matched greedily to the live tracks, best IoU first (a pair counts from
``iou_threshold`` up); an unmatched box starts a new track, and a track unmatched in ``expire_after``
frames in a row is dropped, so a face that comes back after that gets a new id. Each track keeps its
class probabilities smoothed exponentially, ``s = alpha * p + (1 - alpha) * s`` (``alpha = 1``: no
smoothing), and its label is the bundle's rule (`BundleModel.labels_for`) on the smoothed
probabilities, so that a label does not flicker from frame to frame.

`predict_video` is the one frame loop, for a file and for a camera alike (`open_video`): one JSON
line a frame, ``{"file", "frame", "t", "faces": [{"box", "score", "label", "probs", "track"}],
"width", "height"}`` (``probs`` smoothed), and optionally an annotated ``.mp4`` (`annotate`).

Numpy + OpenCV + the runtime only; cv2 is imported inside the functions that read or write video,
so ``import ferops.runtime`` does not need it.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from ferops.runtime.bundle import BundleModel
from ferops.runtime.faces import box_iou
from ferops.runtime.predictor import FacePredictor, PredictSummary, annotate

if TYPE_CHECKING:
    import cv2

__all__ = [
    "DEFAULT_EXPIRE_AFTER",
    "DEFAULT_SMOOTH",
    "DEFAULT_TRACK_IOU",
    "FaceTracker",
    "Track",
    "VideoError",
    "VideoOptions",
    "VideoSource",
    "open_video",
    "predict_video",
]

DEFAULT_TRACK_IOU = 0.3  # a face moves far less than its own width between two frames at video rates
DEFAULT_EXPIRE_AFTER = 10  # frames: a third of a second at 30 fps bridges a missed detection or a blink
DEFAULT_SMOOTH = 0.3  # the smoothed probabilities follow a change over about 1 / alpha = 3 frames
WRITER_FALLBACK_FPS = 30.0  # cameras often report no frame rate


class VideoError(ValueError):
    """A video file or camera that cannot be opened or read; the message says which and why."""


@dataclass
class Track:
    """One face followed over frames: its last box (x, y, w, h), smoothed probabilities, and how many
    frames in a row it has gone unmatched."""

    id: int
    box: tuple[float, float, float, float]
    probs: np.ndarray
    missed: int = 0


def _box(box: Sequence[float]) -> tuple[float, float, float, float]:
    x, y, w, h = (float(v) for v in box)
    return x, y, w, h


def _corners(boxes: Sequence[Sequence[float]]) -> np.ndarray:
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1)


class FaceTracker:
    """``update(boxes, probs)`` once a frame -> the `Track` of each box, in the boxes' order (module docstring);
    `track_faces` does the same on `FacePredictor`'s face dicts."""

    def __init__(
        self, iou_threshold: float = DEFAULT_TRACK_IOU, expire_after: int = DEFAULT_EXPIRE_AFTER, alpha: float = DEFAULT_SMOOTH
    ):
        if not 0.0 < iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
        if expire_after < 1:
            raise ValueError(f"expire_after must be >= 1 frame, got {expire_after}")
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"the smoothing alpha must be in (0, 1] (1: no smoothing), got {alpha}")
        self.iou_threshold = float(iou_threshold)
        self.expire_after = int(expire_after)
        self.alpha = float(alpha)
        self.tracks: list[Track] = []
        self._next_id = 1

    def update(self, boxes: Sequence[Sequence[float]], probs: np.ndarray) -> list[Track]:
        """This frame's boxes (x, y, w, h) and class probabilities ``[N, C]``."""
        p = np.asarray(probs, dtype=np.float64)
        if p.ndim != 2 or len(p) != len(boxes):
            raise ValueError(f"expected probabilities [{len(boxes)}, C] for {len(boxes)} boxes, got shape {list(p.shape)}")
        new_boxes, old_boxes = _corners(boxes), _corners([t.box for t in self.tracks])
        pairs = [
            (iou, t, d)
            for t in range(len(self.tracks))
            for d, iou in enumerate(box_iou(old_boxes[t], new_boxes).tolist())
            if iou >= self.iou_threshold
        ]
        matched: dict[int, Track] = {}  # box index -> track
        used: set[int] = set()
        for _iou_value, t, d in sorted(pairs, key=lambda pair: -pair[0]):  # stable: ties keep the older track
            if t in used or d in matched:
                continue
            track = self.tracks[t]
            track.box = _box(boxes[d])
            track.probs = self.alpha * p[d] + (1.0 - self.alpha) * track.probs
            track.missed = 0
            matched[d] = track
            used.add(t)
        for t, track in enumerate(self.tracks):
            if t not in used:
                track.missed += 1
        self.tracks = [t for t in self.tracks if t.missed < self.expire_after]
        for d in range(len(boxes)):
            if d not in matched:
                matched[d] = Track(self._next_id, _box(boxes[d]), p[d].copy())
                self.tracks.append(matched[d])
                self._next_id += 1
        return [matched[d] for d in range(len(boxes))]

    def track_faces(self, faces: Sequence[dict[str, Any]], model: BundleModel) -> list[dict[str, Any]]:
        """`FacePredictor.predict_rgb`'s faces of one frame -> the same with their ``track`` id, the track's
        smoothed ``probs`` and the ``label`` of those by ``model``'s rule (`BundleModel.labels_for`)."""
        names = model.class_names
        raw = np.array([[face["probs"][c] for c in names] for face in faces]).reshape(len(faces), len(names))
        tracks = self.update([face["box"] for face in faces], raw)
        if not tracks:
            return []
        smoothed = np.stack([t.probs for t in tracks])
        return [
            {**face, "label": label, "probs": {c: round(float(v), 4) for c, v in zip(names, row)}, "track": track.id}
            for face, track, label, row in zip(faces, tracks, model.labels_for(smoothed), smoothed)
        ]


@dataclass(frozen=True)
class VideoOptions:
    """How `predict_video` tracks and how far it reads (``max_frames``: None reads to the end)."""

    smooth: float = DEFAULT_SMOOTH
    track_iou: float = DEFAULT_TRACK_IOU
    expire_after: int = DEFAULT_EXPIRE_AFTER
    max_frames: int | None = None

    def tracker(self) -> FaceTracker:
        return FaceTracker(self.track_iou, self.expire_after, self.smooth)


@dataclass
class VideoSource:
    """An opened capture: ``name`` (the file, or ``camera:INDEX``), ``live`` for a camera (times are
    wall-clock seconds since its first frame), the frame rate and count the container reports (0 when unknown)."""

    name: str
    capture: cv2.VideoCapture
    live: bool
    fps: float
    frame_count: int

    def close(self) -> None:
        self.capture.release()

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_video(source: str | os.PathLike[str] | int) -> VideoSource:
    """A video file, or a camera by index -> `VideoSource`; `VideoError` when it cannot be opened (the
    reason alone: callers name the file or camera, as for images)."""
    import cv2

    if isinstance(source, int):
        capture = cv2.VideoCapture(source)
        if not capture.isOpened():
            raise VideoError("cannot open the camera (no such device, or it is in use)")
        return VideoSource(f"camera:{source}", capture, True, _finite(capture.get(cv2.CAP_PROP_FPS)), 0)
    path = Path(source)
    if not path.is_file():
        raise VideoError("No such file or directory" if not path.exists() else "not a file")
    # FFmpeg only: the default backends would also take a still image or a "%03d" pattern as a "video"
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not capture.isOpened():
        raise VideoError("cannot open as a video: not a container/codec FFmpeg reads, or a truncated file")
    count = _finite(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    return VideoSource(str(path), capture, False, _finite(capture.get(cv2.CAP_PROP_FPS)), int(count))


def _finite(value: float) -> float:
    return value if math.isfinite(value) and value > 0 else 0.0


class _AnnotatedVideo:
    """The ``.mp4`` beside a run, opened at the first frame (its size is known then)."""

    def __init__(self, path: Path, fps: float):
        self.path, self.fps = path, fps or WRITER_FALLBACK_FPS
        self._writer: cv2.VideoWriter | None = None

    def write(self, rgb: np.ndarray) -> None:
        import cv2

        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fourcc = cv2.VideoWriter.fourcc(*"mp4v")
            self._writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, (rgb.shape[1], rgb.shape[0]))
            if not self._writer.isOpened():
                raise VideoError(f"cannot write the annotated video {self.path}")
        self._writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()


def predict_video(
    predictor: FacePredictor,
    source: VideoSource,
    json_out: IO[str],
    summary: PredictSummary,
    options: VideoOptions | None = None,
    out_path: Path | None = None,
    progress: bool = False,
) -> None:
    """The frame loop (module docstring) until the source ends, ``options.max_frames``, or Ctrl-C
    (``summary.interrupted``; what was read so far is written out). Counts go into ``summary``.
    A source giving no frame at all raises `VideoError` before anything is written."""
    import cv2

    options = options or VideoOptions()
    tracker = options.tracker()
    writer = _AnnotatedVideo(out_path, source.fps) if out_path is not None else None
    total = source.frame_count or None
    if options.max_frames is not None:
        total = min(total, options.max_frames) if total else options.max_frames
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=None if source.live else total, unit="frame", desc=Path(source.name).name, leave=False)
    frame_index, first_frame_at = 0, 0.0
    try:
        while options.max_frames is None or frame_index < options.max_frames:
            tick = time.perf_counter()
            ok, bgr = source.capture.read()
            if not ok:
                break
            if source.live:
                now = time.perf_counter()
                first_frame_at = first_frame_at or now
                t = now - first_frame_at
            else:  # the container's timestamp (variable frame rate phone videos), else index / rate
                msec = source.capture.get(cv2.CAP_PROP_POS_MSEC)
                t = msec / 1000 if frame_index == 0 or msec > 0 else frame_index / (source.fps or WRITER_FALLBACK_FPS)
            rgb = predictor.load_rgb(bgr, color_order="bgr")
            faces = tracker.track_faces(predictor.predict_rgb(rgb), predictor.model)
            summary.seconds += time.perf_counter() - tick
            summary.frames += 1
            summary.faces += len(faces)
            record = {"file": source.name, "frame": frame_index, "t": round(t, 3), "faces": faces}
            json_out.write(json.dumps({**record, "width": rgb.width, "height": rgb.height}) + "\n")
            if source.live:
                json_out.flush()  # a reader of a live stream sees each frame as it comes
            if writer is not None:
                writer.write(np.asarray(annotate(rgb, faces)))
            frame_index += 1
            if bar is not None:
                summary.show(bar)
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        if writer is not None:
            writer.close()
        if bar is not None:
            bar.close()
    if frame_index == 0 and not summary.interrupted:
        raise VideoError("no frame could be read")
