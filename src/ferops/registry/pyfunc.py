"""The MLflow pyfunc of a deployable bundle: the int8 TFLite model, served without torch or TensorFlow.

Input (one batch of face crops):
- a DataFrame with an ``image`` column (the logged signature): encoded PNG/JPEG bytes, or base64
  strings of them (JSON over HTTP carries strings; the scoring server already base64-decodes a
  ``binary`` column, so both reach `predict` as bytes or str);
- a numpy uint8 array [N,48,48] or [N,48,48,1] (in-process, through
  ``loaded.unwrap_python_model().predict(None, images)``; the generic ``PyFuncModel.predict``
  enforces the column signature, so wrap arrays with `encode_images` there).
Images that are not 48x48 grayscale are converted to grayscale and resized to 48x48.

Output: a DataFrame with one ``prob_<class>`` float column per class and the predicted ``label``.

The model is logged "from code" (`_model_code.py`, nothing pickled). Where it is served, `ferops`
need not be installed: `log_pyfunc` ships a minimal copy of the code it needs (this module,
`ferops.runtime`) as the model's ``code_paths``. So this module imports
only numpy, pandas, pillow, mlflow and `ferops.runtime` (itself numpy + pillow + LiteRT); keep it that way.
"""

from __future__ import annotations

import base64
import binascii
import io
import shutil
import tempfile
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, DataType, Schema
from PIL import Image

from ferops.runtime import FACE_SIZE, LABELS_FILE, METADATA_FILE, MODEL_FILE, BundleModel, prepare_face, prepare_faces

IMAGE_COLUMN = "image"
LABEL_COLUMN = "label"
PROB_PREFIX = "prob_"
IMAGE_SIZE = FACE_SIZE
BUNDLE_FILES = (MODEL_FILE, LABELS_FILE, METADATA_FILE)
# Serving needs none of torch / tensorflow / onnx: only what this module and ferops.runtime import.
SERVING_PACKAGES = ("mlflow", "numpy", "pandas", "pillow", "ai-edge-litert")


# -- bundle ------------------------------------------------------------------------------------
def read_class_names(bundle_dir: str | Path) -> list[str]:
    return [line.strip() for line in (Path(bundle_dir) / LABELS_FILE).read_text().splitlines() if line.strip()]


def load_bundle(bundle_dir: str | Path) -> BundleModel:
    return BundleModel(bundle_dir)


# -- inputs ------------------------------------------------------------------------------------
def decode_image(value: Any) -> np.ndarray:
    """One image (encoded PNG/JPEG bytes, a base64 string of them, or an array) -> uint8 [48,48]
    (grayscale + resize by `ferops.runtime.prepare_face`)."""
    if isinstance(value, np.ndarray) and value.dtype != object:
        return prepare_face(value)
    if isinstance(value, str):
        text = value.split(",", 1)[1] if value.startswith("data:") else value  # data URI
        try:
            value = base64.b64decode(text, validate=False)
        except (binascii.Error, ValueError) as err:
            raise ValueError("image string is not base64") from err
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"unsupported image value of type {type(value).__name__}")
    try:
        with Image.open(io.BytesIO(bytes(value))) as img:
            img.load()
            return prepare_face(img)
    except (OSError, SyntaxError, ValueError) as err:  # what PIL raises for undecodable bytes
        raise ValueError(f"cannot decode image bytes: {err}") from err


def to_image_batch(model_input: Any) -> np.ndarray:
    """A pyfunc input (see module doc) -> uint8 [N,48,48]."""
    if isinstance(model_input, np.ndarray) and model_input.dtype != object:
        images = model_input
        if images.ndim == 4 and images.shape[-1] == 1:
            images = images[..., 0]
        if images.ndim == 2:
            images = images[None]
        if images.ndim != 3:
            raise ValueError(f"expected images [N,48,48] or [N,48,48,1], got shape {list(images.shape)}")
        if images.dtype != np.uint8 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
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
            raise ValueError(f"DataFrame input needs an '{IMAGE_COLUMN}' column, got {list(model_input.columns)}")
    elif isinstance(model_input, Mapping) and IMAGE_COLUMN in model_input:
        values = list(np.atleast_1d(np.asarray(model_input[IMAGE_COLUMN], dtype=object)))
    elif isinstance(model_input, (list, tuple, np.ndarray)):
        values = list(model_input)
    else:
        raise TypeError(f"unsupported pyfunc input of type {type(model_input).__name__}")
    if not values:
        return np.zeros((0, IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    return np.stack([decode_image(v) for v in values])


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
    df = pd.DataFrame(np.asarray(probs, dtype=np.float32).reshape(len(labels), len(class_names)), columns=prob_columns(class_names))
    df[LABEL_COLUMN] = list(labels)
    return df


def model_signature(class_names: list[str]) -> ModelSignature:
    inputs = Schema([ColSpec(DataType.binary, IMAGE_COLUMN)])
    outputs = Schema([ColSpec(DataType.float, c) for c in prob_columns(class_names)] + [ColSpec(DataType.string, LABEL_COLUMN)])
    return ModelSignature(inputs=inputs, outputs=outputs)


# -- the model ---------------------------------------------------------------------------------
class FERBundleModel(mlflow.pyfunc.PythonModel):
    """Loads the bundle artifact once (`load_context`); `predict` decodes, runs the int8 model, tabulates."""

    def __init__(self) -> None:
        self._model = None
        self.class_names: list[str] = []

    def load_context(self, context) -> None:
        self._model = load_bundle(context.artifacts["bundle"])
        self.class_names = list(self._model.class_names)

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        if self._model is None:
            raise RuntimeError("model not loaded: load it with mlflow.pyfunc.load_model")
        images = to_image_batch(model_input)
        if len(images) == 0:
            return predictions_frame(np.zeros((0, len(self.class_names)), np.float32), [], self.class_names)
        probs, labels = self._model.predict(images)
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
    artifacts = {"bundle": str(bundle_dir)}
    for key, path in (extra_artifacts or {}).items():
        if key == "bundle":
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
