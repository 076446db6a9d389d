"""Inference on a deployment bundle (numpy + LiteRT only; no torch, no tensorflow).

A bundle directory holds (see docs/architecture.md, "Export / bundle contract"):

- ``model_int8.tflite``: full-integer model, NHWC ``[1, 48, 48, 1]`` input of raw 0..255 pixels;
- ``labels.txt``: one class name a line, in output order;
- ``model_metadata.json``: input/output shape, dtype, quantisation scale and zero point,
  preprocessing, class names, ``softmax_in_model``, source run / checkpoint.

>>> model = BundleModel("outputs/export/bundle")              # doctest: +SKIP
>>> probs, labels = model.predict(prepare_faces([crop]))       # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np
from PIL import Image

from ferops.runtime.decode import prepare_faces
from ferops.runtime.tflite import TFLiteModel

__all__ = [
    "BUNDLE_FORMAT",
    "BUNDLE_FORMAT_VERSION",
    "LABELS_FILE",
    "METADATA_FILE",
    "MODEL_FILE",
    "BundleError",
    "BundleModel",
    "softmax",
]

MODEL_FILE = "model_int8.tflite"
LABELS_FILE = "labels.txt"
METADATA_FILE = "model_metadata.json"
BUNDLE_FORMAT = "ferops-bundle"
BUNDLE_FORMAT_VERSION = 1


class BundleError(ValueError):
    """A bundle directory is incomplete or its files disagree with each other."""


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    z = np.asarray(x, dtype=np.float64)
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return np.asarray((e / e.sum(axis=axis, keepdims=True)).astype(np.float32))


def _bundle_member(name: object, meta_path: Path) -> str:
    """A file name from the metadata, checked to stay inside the bundle directory: a relative path
    without ``..`` (on POSIX or Windows reading), so a bundle someone hands you cannot point the
    runtime at a file elsewhere on the machine."""
    if not isinstance(name, str) or not name.strip():
        raise BundleError(f"{meta_path}: model_file must be a file name inside the bundle, got {name!r}")
    posix, win = PurePosixPath(name), PureWindowsPath(name)
    if posix.is_absolute() or win.is_absolute() or win.drive or win.root or ".." in posix.parts or ".." in win.parts:
        raise BundleError(
            f"{meta_path}: model_file {name!r} is outside the bundle directory; it must be a relative path inside it"
        )
    return name


class BundleModel:
    """``BundleModel(bundle_dir).predict(images) -> (probs float32 [N, C], labels list[str])``.

    ``images``: uint8 ``[N, 48, 48]`` or ``[N, 48, 48, 1]`` (grayscale face crops already resized;
    see :func:`ferops.runtime.prepare_faces`). Quantisation of the input and dequantisation of the
    output use the parameters stored in the model and are checked against ``model_metadata.json``.
    """

    def __init__(self, bundle_dir: str | Path, num_threads: int = 1):
        self.bundle_dir = Path(bundle_dir)
        meta_path = self.bundle_dir / METADATA_FILE
        labels_path = self.bundle_dir / LABELS_FILE
        for p in (meta_path, labels_path):
            if not p.is_file():
                raise BundleError(f"bundle {self.bundle_dir}: missing {p.name}")
        self.metadata: dict[str, Any] = json.loads(meta_path.read_text(encoding="utf-8"))
        if self.metadata.get("format") != BUNDLE_FORMAT:
            raise BundleError(f"{meta_path}: not a {BUNDLE_FORMAT} metadata file (format={self.metadata.get('format')!r})")
        self.class_names: list[str] = [ln for ln in labels_path.read_text(encoding="utf-8").splitlines() if ln.strip()]
        if self.class_names != list(self.metadata.get("class_names", [])):
            raise BundleError(f"bundle {self.bundle_dir}: {LABELS_FILE} and {METADATA_FILE} list different classes")
        model_path = self.bundle_dir / _bundle_member(self.metadata.get("model_file", MODEL_FILE), meta_path)
        if not model_path.is_file():
            raise BundleError(f"bundle {self.bundle_dir}: missing {model_path.name}")
        self.model = TFLiteModel(model_path, num_threads=num_threads)
        self.softmax_in_model = bool(self.metadata.get("softmax_in_model", False))
        self._check_metadata()

    def _check_metadata(self) -> None:
        if self.model.num_outputs != len(self.class_names):
            raise BundleError(
                f"bundle {self.bundle_dir}: model has {self.model.num_outputs} outputs but {len(self.class_names)} class names"
            )
        for key, spec in (("input", self.model.input), ("output", self.model.output)):
            declared = self.metadata.get(key, {})
            q = declared.get("quantization", {})
            ok = (
                list(declared.get("shape", [])) == list(spec.shape)
                and declared.get("dtype") == np.dtype(spec.dtype).name
                and float(q.get("scale", np.nan)) == spec.scale
                and int(q.get("zero_point", -(10**9))) == spec.zero_point
            )
            if not ok:
                raise BundleError(
                    f"bundle {self.bundle_dir}: {METADATA_FILE} {key} {declared} does not match the model's {spec.to_dict()}"
                )

    @property
    def image_size(self) -> tuple[int, int]:
        return self.model.image_size

    def predict_logits(self, images: np.ndarray) -> np.ndarray:
        """Dequantised model outputs, float32 [N, C] (logits, or probabilities when softmax is in the model)."""
        arr = np.asarray(images)
        if arr.dtype != np.uint8:
            raise TypeError(f"images must be uint8 raw pixels (0..255), got dtype {arr.dtype}; see prepare_faces()")
        return self.model.predict_logits(arr)

    def predict(self, images: np.ndarray) -> tuple[np.ndarray, list[str]]:
        out = self.predict_logits(images)
        probs = out.astype(np.float32) if self.softmax_in_model else softmax(out)
        labels = [self.class_names[i] for i in probs.argmax(axis=1)]
        return probs, labels

    def predict_faces(self, faces: Iterable[Image.Image | np.ndarray], bgr: bool = False) -> tuple[np.ndarray, list[str]]:
        """Face crops of any size, RGB or gray (PIL or numpy) -> ``predict``."""
        return self.predict(prepare_faces(faces, size=self.image_size[0], bgr=bgr))
