"""The MLflow pyfunc of a deployable bundle: the int8 TFLite model, served without torch or TensorFlow.

Input (one batch of face crops):
- a DataFrame with an ``image`` column (the logged signature): encoded PNG/JPEG bytes, or base64
  strings of them (JSON over HTTP carries strings; the scoring server already base64-decodes a
  ``binary`` column, so both reach `predict` as bytes or str);
- a numpy uint8 array [N,48,48] or [N,48,48,1] (in-process, through
  ``loaded.unwrap_python_model().predict(None, images)``; the generic ``PyFuncModel.predict``
  enforces the column signature, so wrap arrays with `encode_images` there).
Images that are not 48x48 grayscale are converted to grayscale and resized to 48x48.

Requests come from anyone who can reach the server, so input is checked before any work is done
on it (`FERBundleModel` arguments, or the environment variables where the model is served):

- at most ``max_rows`` rows a request (`MAX_ROWS`, 64; ``FEROPS_MAX_ROWS``);
- at most ``max_image_bytes`` encoded bytes an image (`MAX_IMAGE_BYTES`, 1 MiB; ``FEROPS_MAX_IMAGE_BYTES``);
- only PNG and JPEG (`IMAGE_FORMATS`), identified from the bytes, not from a name;
- at most ``max_pixels`` pixels an image (`MAX_IMAGE_PIXELS`, 2048 x 2048; ``FEROPS_MAX_IMAGE_PIXELS``),
  checked on the header before anything is decoded (a small PNG may hold gigapixels of zeros);
- truncated or corrupt images are refused, not padded.

A refused request raises `InvalidImageInput` (an ``MlflowException`` with ``INVALID_PARAMETER_VALUE``,
HTTP 400 from the scoring server, and a ``ValueError``) whose message names the row and the reason.
These caps bound the work done per request, not the size of the request body the server reads
before calling the model: cap that in front of the server (README, "mlflow models serve").

Output: a DataFrame with one ``prob_<class>`` float column per class and the predicted ``label``.
Both come from `BundleModel.predict`, so the bundle's post-processing applies as the runtime defines
it (`ferops.runtime.bundle`): the probabilities are temperature-scaled (``temperature`` in the
bundle metadata) and always returned in full; the label is ``unknown`` for a row whose top
probability is below the bundle's unknown threshold when the request's ``reject_unknown`` param
is true, or when it is absent and the metadata's ``unknown.enabled`` is (params: `PARAMS`, part of
the logged signature, e.g. ``{"dataframe_split": ..., "params": {"reject_unknown": true}}``).

The model is logged "from code" (`_model_code.py`, nothing pickled). Where it is served, `ferops`
need not be installed: `log_pyfunc` ships a minimal copy of the code it needs (this module,
`ferops.runtime`) as the model's ``code_paths``. So this module imports
only numpy, pandas, pillow, mlflow and `ferops.runtime` (itself numpy + pillow + LiteRT); keep it that way.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import shutil
import tempfile
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.types import ColSpec, DataType, ParamSchema, ParamSpec, Schema
from PIL import Image

from ferops.runtime import (
    FACE_SIZE,
    LABELS_FILE,
    METADATA_FILE,
    MODEL_FILE,
    UNTRUSTED_FORMATS,
    BundleError,
    BundleModel,
    ImageDecodeError,
    prepare_face,
    prepare_faces,
)
from ferops.runtime import decode_image as decode_face_bytes
from ferops.runtime.bundle import BUNDLE_ARTIFACT

IMAGE_COLUMN = "image"
REJECT_UNKNOWN = "reject_unknown"  # request param: None (absent) = the bundle metadata's unknown.enabled
PARAMS = (REJECT_UNKNOWN,)
LABEL_COLUMN = "label"
PROB_PREFIX = "prob_"
IMAGE_SIZE = FACE_SIZE
BUNDLE_FILES = (MODEL_FILE, LABELS_FILE, METADATA_FILE)
# Serving needs none of torch / tensorflow / onnx: only what this module and ferops.runtime import.
SERVING_PACKAGES = ("mlflow", "numpy", "pandas", "pillow", "ai-edge-litert")

# Limits on untrusted input (see the module doc). Training-time image folders are trusted files and
# keep their wider format list (ferops.data); what the served model decodes is this narrow one.
MAX_ROWS = 64
MAX_IMAGE_BYTES = 1 << 20
MAX_IMAGE_PIXELS = 2048 * 2048
IMAGE_FORMATS = UNTRUSTED_FORMATS
LIMIT_ENV = {"max_rows": "FEROPS_MAX_ROWS", "max_image_bytes": "FEROPS_MAX_IMAGE_BYTES", "max_pixels": "FEROPS_MAX_IMAGE_PIXELS"}


class InvalidImageInput(MlflowException, ValueError):
    """Bad request input: HTTP 400 from the scoring server (INVALID_PARAMETER_VALUE), a ValueError in process."""

    def __init__(self, message: str):
        super().__init__(message, error_code=INVALID_PARAMETER_VALUE)


class InvalidParams(MlflowException, ValueError):
    """Bad request params: HTTP 400 from the scoring server (INVALID_PARAMETER_VALUE), a ValueError in process."""

    def __init__(self, message: str):
        super().__init__(message, error_code=INVALID_PARAMETER_VALUE)


def reject_unknown_param(params: Mapping[str, Any] | None) -> bool | None:
    """``params["reject_unknown"]``: a bool, or None when absent (the bundle's default). The server
    checks the type against the signature; in-process callers get the same check here."""
    params = dict(params or {})
    unknown = sorted(set(params) - set(PARAMS))
    if unknown:
        raise InvalidParams(f"unknown params {unknown}; supported: {list(PARAMS)}")
    value = params.get(REJECT_UNKNOWN)
    if value is None or isinstance(value, (bool, np.bool_)):
        return None if value is None else bool(value)
    raise InvalidParams(f"params.{REJECT_UNKNOWN} must be true or false, got {value!r}")


def _limit(name: str, value: int | None, default: int) -> int:
    if value is None:
        env = os.environ.get(LIMIT_ENV[name], "").strip()
        if not env:
            return default
        try:
            value = int(env)
        except ValueError as err:
            raise ValueError(f"{LIMIT_ENV[name]}={env!r}: not an integer") from err
    if int(value) < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


# -- bundle ------------------------------------------------------------------------------------
def read_class_names(bundle_dir: str | Path) -> list[str]:
    return [line.strip() for line in (Path(bundle_dir) / LABELS_FILE).read_text().splitlines() if line.strip()]


def load_bundle(bundle_dir: str | Path) -> BundleModel:
    return BundleModel(bundle_dir)


# -- inputs ------------------------------------------------------------------------------------
def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise InvalidImageInput(f"image is {width}x{height} = {width * height} pixels, more than the limit of {max_pixels}")


def decode_image(value: Any, max_image_bytes: int = MAX_IMAGE_BYTES, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """One image (encoded PNG/JPEG bytes, a base64 string of them, or an array) -> uint8 [48,48]
    (`ferops.runtime.decode`, the decoder training and the runtime use). Raises `InvalidImageInput`
    for input outside the limits (see the module doc) and for bytes that are not a complete PNG or JPEG."""
    if isinstance(value, np.ndarray) and value.dtype != object:
        if value.ndim >= 2:
            _check_pixels(int(value.shape[1]), int(value.shape[0]), max_pixels)
        return prepare_face(value)
    if isinstance(value, str):
        text = value.split(",", 1)[1] if value.startswith("data:") else value  # data URI
        if len(text) > 4 * (max_image_bytes // 3 + 1) + 4:  # base64 of more than max_image_bytes
            raise InvalidImageInput(f"image is larger than the limit of {max_image_bytes} bytes ({len(text)} base64 characters)")
        try:
            value = base64.b64decode(text, validate=False)
        except (binascii.Error, ValueError) as err:
            raise InvalidImageInput("image string is not base64") from err
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise InvalidImageInput(f"unsupported image value of type {type(value).__name__}")
    try:
        return decode_face_bytes(value, formats=IMAGE_FORMATS, max_bytes=max_image_bytes, max_pixels=max_pixels)
    except ImageDecodeError as err:
        raise InvalidImageInput(str(err)) from err.__cause__


def to_image_batch(
    model_input: Any,
    max_rows: int = MAX_ROWS,
    max_image_bytes: int = MAX_IMAGE_BYTES,
    max_pixels: int = MAX_IMAGE_PIXELS,
) -> np.ndarray:
    """A pyfunc input (see module doc) -> uint8 [N,48,48]. Raises `InvalidImageInput` naming the row."""
    if isinstance(model_input, np.ndarray) and model_input.dtype != object:
        images = model_input
        if images.ndim == 4 and images.shape[-1] == 1:
            images = images[..., 0]
        if images.ndim == 2:
            images = images[None]
        if images.ndim != 3:
            raise InvalidImageInput(f"expected images [N,48,48] or [N,48,48,1], got shape {list(images.shape)}")
        _check_rows(len(images), max_rows)
        if images.dtype != np.uint8 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
            try:
                _check_pixels(int(images.shape[2]), int(images.shape[1]), max_pixels)
            except InvalidImageInput as err:
                raise InvalidImageInput(f"row 0: {err.message}") from None
            images = prepare_faces(images)
        return np.ascontiguousarray(images)
    if isinstance(model_input, pd.Series):
        values = list(model_input)
    elif isinstance(model_input, pd.DataFrame):
        if IMAGE_COLUMN in model_input.columns:
            values = list(model_input[IMAGE_COLUMN])
        elif model_input.shape[1] == 1:
            values = list(model_input.iloc[:, 0])
        else:
            raise InvalidImageInput(f"DataFrame input needs an '{IMAGE_COLUMN}' column, got {list(model_input.columns)}")
    elif isinstance(model_input, Mapping) and IMAGE_COLUMN in model_input:
        values = list(np.atleast_1d(np.asarray(model_input[IMAGE_COLUMN], dtype=object)))
    elif isinstance(model_input, (list, tuple, np.ndarray)):
        values = list(model_input)
    else:
        raise InvalidImageInput(f"unsupported pyfunc input of type {type(model_input).__name__}")
    _check_rows(len(values), max_rows)
    if not values:
        return np.zeros((0, IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    faces = []
    for i, v in enumerate(values):
        try:
            faces.append(decode_image(v, max_image_bytes=max_image_bytes, max_pixels=max_pixels))
        except InvalidImageInput as err:
            raise InvalidImageInput(f"row {i}: {err.message}") from err.__cause__
        except (ValueError, TypeError) as err:  # an array row prepare_face refuses
            raise InvalidImageInput(f"row {i}: {err}") from err
    return np.stack(faces)


def _check_rows(n: int, max_rows: int) -> None:
    if n > max_rows:
        raise InvalidImageInput(f"request has {n} rows, more than the limit of {max_rows} a request")


def encode_images(images: np.ndarray, fmt: str = "PNG", as_base64: bool = False) -> pd.DataFrame:
    """uint8 [N,48,48] -> the signature's DataFrame (PNG is lossless: predictions are unchanged)."""
    images = np.asarray(images)
    if images.ndim == 4:
        images = images[..., 0]
    encoded = []
    for im in images:
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(im, dtype=np.uint8)).save(buf, format=fmt)
        data = buf.getvalue()
        encoded.append(base64.b64encode(data).decode("ascii") if as_base64 else data)
    return pd.DataFrame({IMAGE_COLUMN: encoded})


# -- outputs -----------------------------------------------------------------------------------
def prob_columns(class_names: list[str]) -> list[str]:
    return [f"{PROB_PREFIX}{c}" for c in class_names]


def predictions_frame(probs: np.ndarray, labels: list[str], class_names: list[str]) -> pd.DataFrame:
    df = pd.DataFrame(
        np.asarray(probs, dtype=np.float32).reshape(len(labels), len(class_names)), columns=prob_columns(class_names)
    )
    df[LABEL_COLUMN] = list(labels)
    return df


def model_signature(class_names: list[str]) -> ModelSignature:
    inputs = Schema([ColSpec(DataType.binary, IMAGE_COLUMN)])
    outputs = Schema([ColSpec(DataType.float, c) for c in prob_columns(class_names)] + [ColSpec(DataType.string, LABEL_COLUMN)])
    params = ParamSchema([ParamSpec(REJECT_UNKNOWN, DataType.boolean, None)])
    return ModelSignature(inputs=inputs, outputs=outputs, params=params)


# -- the model ---------------------------------------------------------------------------------
class FERBundleModel(mlflow.pyfunc.PythonModel):
    """Loads the bundle artifact once (`load_context`); `predict` decodes, runs the int8 model, tabulates."""

    def __init__(self, max_rows: int | None = None, max_image_bytes: int | None = None, max_pixels: int | None = None) -> None:
        """Limits default to the ``FEROPS_MAX_*`` environment variables, else `MAX_ROWS`,
        `MAX_IMAGE_BYTES`, `MAX_IMAGE_PIXELS` (read when the model is built, i.e. loaded)."""
        self._model = None
        self.class_names: list[str] = []
        self.max_rows = _limit("max_rows", max_rows, MAX_ROWS)
        self.max_image_bytes = _limit("max_image_bytes", max_image_bytes, MAX_IMAGE_BYTES)
        self.max_pixels = _limit("max_pixels", max_pixels, MAX_IMAGE_PIXELS)

    def load_context(self, context) -> None:
        self._model = load_bundle(context.artifacts[BUNDLE_ARTIFACT])
        self.class_names = list(self._model.class_names)

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        if self._model is None:
            raise RuntimeError("model not loaded: load it with mlflow.pyfunc.load_model")
        reject_unknown = reject_unknown_param(params)
        images = to_image_batch(model_input, self.max_rows, self.max_image_bytes, self.max_pixels)
        if len(images) == 0:
            return predictions_frame(np.zeros((0, len(self.class_names)), np.float32), [], self.class_names)
        try:  # the runtime's post-processing: temperature, then the unknown threshold when asked
            probs, labels = self._model.predict(images, reject_unknown=reject_unknown)
        except BundleError as err:  # e.g. reject_unknown asked of a bundle without a threshold
            raise InvalidParams(str(err)) from err
        return predictions_frame(probs, labels, self.class_names)


# -- logging -----------------------------------------------------------------------------------
def pip_requirements() -> list[str]:
    reqs = []
    for name in SERVING_PACKAGES:
        try:
            reqs.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            reqs.append(name)
    return reqs


def build_serving_code(dest: str | Path) -> Path:
    """A minimal `ferops` package under `dest`: empty package inits, this module, the runtime.
    It becomes the model's code path, so `ferops.registry.pyfunc` (which `_model_code.py`, the
    logged model, imports) and `ferops.runtime` import where ferops is not installed, without
    pulling in the training stack through the real package `__init__`s."""
    src_pkg = Path(__file__).resolve().parents[1]  # .../ferops
    pkg = Path(dest) / "ferops"
    (pkg / "registry").mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text('"""ferops serving subset (vendored by ferops.registry.pyfunc)."""\n')
    (pkg / "registry" / "__init__.py").write_text("")
    shutil.copy2(src_pkg / "registry" / "pyfunc.py", pkg / "registry" / "pyfunc.py")
    shutil.copytree(src_pkg / "runtime", pkg / "runtime", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return pkg


def log_pyfunc(
    bundle_dir: str | Path,
    name: str = "model",
    extra_artifacts: Mapping[str, str | Path | None] | None = None,
    registered_model_name: str | None = None,
    example_images: np.ndarray | None = None,
) -> mlflow.models.model.ModelInfo:
    """Log the bundle as a pyfunc model in the active run. `extra_artifacts` (e.g. {"onnx": path,
    "checkpoint": path}) travel with it; entries whose path is None or missing are skipped."""
    bundle_dir = Path(bundle_dir)
    missing = [f for f in BUNDLE_FILES if not (bundle_dir / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{bundle_dir}: not a bundle, missing {missing}")
    class_names = read_class_names(bundle_dir)
    artifacts = {BUNDLE_ARTIFACT: str(bundle_dir)}
    for key, path in (extra_artifacts or {}).items():
        if key == BUNDLE_ARTIFACT:
            raise ValueError("'bundle' is reserved for the int8 bundle")
        if path is not None and Path(path).exists():
            artifacts[key] = str(path)
    if example_images is None:
        ramp = np.linspace(0, 255, IMAGE_SIZE * IMAGE_SIZE).reshape(IMAGE_SIZE, IMAGE_SIZE)
        example_images = ramp.astype(np.uint8)[None]
    with tempfile.TemporaryDirectory() as tmp:
        code = build_serving_code(tmp)
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=str(Path(__file__).with_name("_model_code.py")),
            artifacts=artifacts,
            code_paths=[str(code)],
            pip_requirements=pip_requirements(),
            signature=model_signature(class_names),
            input_example=encode_images(example_images),
            registered_model_name=registered_model_name,
        )
