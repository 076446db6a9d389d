"""Inference on a deployment bundle (numpy + LiteRT only; no torch, no tensorflow).

A bundle directory holds (see docs/architecture.md, "Export / bundle contract"):

- ``model_int8.tflite``: full-integer model, NHWC ``[1, 48, 48, 1]`` input of raw 0..255 pixels;
- ``labels.txt``: one class name a line, in output order;
- ``model_metadata.json``: input/output shape, dtype, quantisation scale and zero point,
  preprocessing, class names, ``softmax_in_model``, source run / checkpoint, and the
  post-processing below (``temperature``, ``unknown``).

Post-processing, in this order (the one place it is defined; extend it here):

1. TTA average: with ``tta = "hflip"`` (``metadata["tta"]``, or the ``tta`` argument; ``"none"``
   when absent: older bundles) the model also runs on the mirrored crop and the two views are
   averaged (`average_views`): logits as they are, probabilities (``softmax_in_model``) as
   ``softmax(mean log p)``, so the result stays in the model's output space and steps 2-4 apply
   unchanged. A mirrored face is the same expression (training augments with the same flip), and on
   FER2013 PublicTest the shipped model gains about a point from it (docs/results.md); it doubles
   the classification time, not the detection.
2. Temperature: ``z / T`` with ``T = metadata["temperature"]`` (1.0 when absent: older bundles),
   fitted on the val split by the export (``ferops.evaluation.calibration``). When the model
   ends in a softmax (``softmax_in_model``), its dequantised probabilities ``p`` are turned back
   into log-probabilities first: ``softmax(log p / T) = softmax(z / T)`` exactly, since ``log p``
   differs from the logits ``z`` by a per-row constant; only the int8 resolution of small ``p``
   (steps of ~1/256, zeros stay zero) is lost.
3. Softmax -> the probabilities :meth:`BundleModel.predict` returns, always (raw, never masked).
4. Unknown threshold: with ``reject_unknown`` (off unless asked for, by the caller or the
   metadata's ``unknown.enabled``), a row whose top probability is below
   ``metadata["unknown"]["threshold"]`` (recommended on val, ``ferops.evaluation.threshold``) is
   labelled :data:`UNKNOWN_LABEL`. Only the label changes; the probabilities stay as in 3.

Temperature never changes the argmax, so without ``reject_unknown`` the labels are those of the
raw model.

>>> model = BundleModel("outputs/export/bundle")              # doctest: +SKIP
>>> probs, labels = model.predict(prepare_faces([crop]))       # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np
from PIL import Image

from ferops.runtime.decode import prepare_faces
from ferops.runtime.tflite import TFLiteModel

__all__ = [
    "BUNDLE_FORMAT",
    "BUNDLE_FORMAT_VERSION",
    "EDGETPU_MODEL_FILE",
    "LABELS_FILE",
    "METADATA_FILE",
    "MODEL_FILE",
    "TTA_VIEWS",
    "UNKNOWN_LABEL",
    "BundleError",
    "BundleModel",
    "average_views",
    "calibrated_probs",
    "check_tta",
    "log_scores",
    "predict_views",
    "softmax",
]

MODEL_FILE = "model_int8.tflite"
EDGETPU_MODEL_FILE = "model_int8_edgetpu.tflite"  # optional: edgetpu_compiler's output, run with the EdgeTPU delegate
LABELS_FILE = "labels.txt"
METADATA_FILE = "model_metadata.json"
BUNDLE_ARTIFACT = "bundle"  # the bundle's key among a logged pyfunc model's artifacts (ferops.registry.pyfunc)
BUNDLE_FORMAT = "ferops-bundle"
BUNDLE_FORMAT_VERSION = 1
UNKNOWN_LABEL = "unknown"  # the label of a row below the unknown threshold (post-processing step 4)


def _mirrored(images: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(images[:, :, ::-1])  # [N, H, W] or [N, H, W, 1]: axis 2 is the width


# Post-processing step 1: the views of each crop the model runs on, by name (metadata["tta"]).
TTA_VIEWS: dict[str, tuple[Callable[[np.ndarray], np.ndarray], ...]] = {
    "none": (lambda images: images,),
    "hflip": (lambda images: images, _mirrored),
}


class BundleError(ValueError):
    """A bundle directory is incomplete or its files disagree with each other."""


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    z = np.asarray(x, dtype=np.float64)
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return np.asarray((e / e.sum(axis=axis, keepdims=True)).astype(np.float32))


def log_scores(outputs: np.ndarray, outputs_are_probs: bool = False) -> np.ndarray:
    """Model outputs as scores whose softmax is the model's probabilities (float64 [N, C]): logits as
    they are; probabilities (``softmax_in_model``) as ``log p``, clipped at the smallest float32 so
    that a row of exact zeros stays finite."""
    z = np.asarray(outputs, dtype=np.float64)
    if outputs_are_probs:
        z = np.log(np.clip(z, np.finfo(np.float32).tiny, None))
    return z


def average_views(view_outputs: Sequence[np.ndarray], outputs_are_probs: bool = False) -> np.ndarray:
    """Post-processing step 1: the model outputs of several views of the same crops -> one output a
    crop, float32 [N, C], in the model's output space (logits: their mean; probabilities:
    ``softmax(mean log p)``, the normalised geometric mean)."""
    if len(view_outputs) == 1:
        return np.asarray(view_outputs[0], dtype=np.float32)
    mean = np.mean([log_scores(o, outputs_are_probs) for o in view_outputs], axis=0)
    return softmax(mean) if outputs_are_probs else mean.astype(np.float32)


def check_tta(tta: object, where: str = "tta", error: type[ValueError] = ValueError) -> str:
    """``tta`` when it names a `TTA_VIEWS` entry; else ``error`` naming ``where`` and the choices."""
    if not isinstance(tta, str) or tta not in TTA_VIEWS:
        raise error(f"{where} must be one of {sorted(TTA_VIEWS)}, got {tta!r}")
    return tta


def predict_views(
    predict: Callable[[np.ndarray], np.ndarray], images: np.ndarray, tta: str = "none", outputs_are_probs: bool = False
) -> np.ndarray:
    """Post-processing step 1 for any model (the bundle's int8 file, and the export's PyTorch, ONNX
    and TFLite models it is compared with): ``predict`` on each view of ``tta``, averaged."""
    check_tta(tta)
    arr = np.asarray(images)
    return average_views([predict(view(arr)) for view in TTA_VIEWS[tta]], outputs_are_probs)


def calibrated_probs(outputs: np.ndarray, temperature: float = 1.0, outputs_are_probs: bool = False) -> np.ndarray:
    """Post-processing steps 2 and 3 (module docstring): ``softmax(scores / temperature)``, float32 [N, C]."""
    t = float(temperature)
    if not np.isfinite(t) or t <= 0:
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    if outputs_are_probs and t == 1.0:
        return np.asarray(outputs, dtype=np.float32)  # the model's own probabilities, as they are
    return softmax(log_scores(outputs, outputs_are_probs) / t)


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


def _number(value: object, where: str) -> float:
    """A finite JSON number (not a bool, not a string) or :class:`BundleError` naming ``where``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise BundleError(f"{where} must be a finite number, got {value!r}")
    return float(value)


class BundleModel:
    """``BundleModel(bundle_dir).predict(images) -> (probs float32 [N, C], labels list[str])``.

    ``reject_unknown``: label rows below the unknown threshold :data:`UNKNOWN_LABEL` (post-processing
    step 4); ``None`` takes the metadata's ``unknown.enabled`` (false unless the export was told
    otherwise). ``unknown_threshold`` overrides the metadata's threshold. ``tta``: the views of
    step 1 (`TTA_VIEWS`); ``None`` takes the metadata's ``tta`` ("none" when absent).

    ``images``: uint8 ``[N, 48, 48]`` or ``[N, 48, 48, 1]`` (grayscale face crops already resized;
    see :func:`ferops.runtime.prepare_faces`). Quantisation of the input and dequantisation of the
    output use the parameters stored in the model and are checked against ``model_metadata.json``.
    """

    def __init__(
        self,
        bundle_dir: str | Path,
        num_threads: int = 1,
        *,
        reject_unknown: bool | None = None,
        unknown_threshold: float | None = None,
        tta: str | None = None,
    ):
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
        # the compiled model through the EdgeTPU delegate when both are present, else the CPU model
        self.model = TFLiteModel.for_device(model_path, self.bundle_dir / EDGETPU_MODEL_FILE, num_threads=num_threads)
        self.device: str = self.model.device  # "edgetpu" or "cpu"
        self.softmax_in_model = bool(self.metadata.get("softmax_in_model", False))
        self._check_metadata()
        self._read_postprocessing(meta_path, reject_unknown, unknown_threshold, tta)

    def _read_postprocessing(
        self, meta_path: Path, reject_unknown: bool | None, unknown_threshold: float | None, tta: str | None
    ) -> None:
        """TTA, temperature and unknown threshold from the metadata (module docstring), checked: a bundle
        someone edited by hand must fail here, naming the file and key, not at the first request."""
        where = "tta argument" if tta is not None else f"{meta_path}: tta"
        self.tta = check_tta(self.metadata.get("tta", "none") if tta is None else tta, where, BundleError)
        self.temperature = _number(self.metadata.get("temperature", 1.0), f"{meta_path}: temperature")
        if self.temperature <= 0:
            raise BundleError(f"{meta_path}: temperature must be > 0, got {self.temperature}")
        unknown = self.metadata.get("unknown", {})
        if unknown is None:
            unknown = {}
        if not isinstance(unknown, dict):
            raise BundleError(f"{meta_path}: unknown must be an object with threshold and enabled, got {unknown!r}")
        threshold = unknown.get("threshold")
        where = f"{meta_path}: unknown.threshold"
        if unknown_threshold is not None:
            threshold, where = unknown_threshold, "unknown_threshold argument"
        self.unknown_threshold: float | None = None if threshold is None else _number(threshold, where)
        if self.unknown_threshold is not None and not 0.0 <= self.unknown_threshold <= 1.0:
            raise BundleError(f"{where} must be in [0, 1], got {self.unknown_threshold}")
        enabled = unknown.get("enabled", False)
        if not isinstance(enabled, bool):
            raise BundleError(f"{meta_path}: unknown.enabled must be true or false, got {enabled!r}")
        self.reject_unknown = enabled if reject_unknown is None else bool(reject_unknown)
        if self.reject_unknown:
            self._unknown_threshold_for_rejecting()

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

    def predict_outputs(self, images: np.ndarray) -> np.ndarray:
        """Post-processing step 1 (module docstring): the views' outputs averaged, float32 [N, C], in
        the model's output space (what steps 2-4 take); `predict_logits` when ``tta`` is "none"."""
        return predict_views(self.predict_logits, images, self.tta, self.softmax_in_model)

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        """Post-processing steps 1-3 (module docstring): calibrated probabilities, float32 [N, C]."""
        return calibrated_probs(self.predict_outputs(images), self.temperature, self.softmax_in_model)

    def _unknown_threshold_for_rejecting(self) -> float:
        if self.unknown_threshold is None:
            raise BundleError(f"bundle {self.bundle_dir}: reject_unknown asked for, but the bundle records no unknown threshold")
        if UNKNOWN_LABEL in self.class_names:
            raise BundleError(
                f"bundle {self.bundle_dir}: a class is named {UNKNOWN_LABEL!r}, so rejected rows could not be told apart"
            )
        return self.unknown_threshold

    def labels_for(self, probs: np.ndarray, reject_unknown: bool | None = None) -> list[str]:
        """Step 4: the argmax class, or :data:`UNKNOWN_LABEL` below the threshold when rejecting."""
        reject = self.reject_unknown if reject_unknown is None else bool(reject_unknown)
        p = np.asarray(probs)
        labels = [self.class_names[i] for i in p.argmax(axis=1)]
        if reject:
            threshold = self._unknown_threshold_for_rejecting()
            labels = [UNKNOWN_LABEL if c < threshold else lab for lab, c in zip(labels, p.max(axis=1), strict=True)]
        return labels

    def predict(self, images: np.ndarray, reject_unknown: bool | None = None) -> tuple[np.ndarray, list[str]]:
        """``(probs, labels)``: probabilities always as step 3 gives them; labels per step 4."""
        probs = self.predict_proba(images)
        return probs, self.labels_for(probs, reject_unknown)

    def predict_faces(
        self, faces: Iterable[Image.Image | np.ndarray], bgr: bool = False, reject_unknown: bool | None = None
    ) -> tuple[np.ndarray, list[str]]:
        """Face crops of any size, RGB or gray (PIL or numpy) -> ``predict``."""
        return self.predict(prepare_faces(faces, size=self.image_size[0], bgr=bgr), reject_unknown)
