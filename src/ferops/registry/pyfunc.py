"""The MLflow pyfunc of a deployable bundle: face detection and the int8 TFLite model, served without
torch or TensorFlow.

Input (one image a row):
- a DataFrame with an ``image`` column (the logged signature): encoded PNG/JPEG bytes, or base64
  strings of them (JSON over HTTP carries strings; the scoring server already base64-decodes a
  ``binary`` column, so both reach `predict` as bytes or str); CSV with an ``image`` header and one
  base64 string a line works too (``curl -H 'Content-Type: text/csv' --data-binary @-``);
- a numpy uint8 array [N,48,48] or [N,48,48,1] of face crops (in-process, through
  ``loaded.unwrap_python_model().predict(None, images)``; the generic ``PyFuncModel.predict``
  enforces the column signature, so wrap arrays with `encode_images` there).

Each row is either a face crop or a whole photo (request param ``detect``):
- ``detect`` absent (None): a photo is an image larger than a 48x48 crop on either side; a crop is not;
- ``detect: true``: every row is a photo; ``detect: false``: every row is a crop.
A photo goes through the face detector the model carries (BlazeFace full range, the ``face_detector``
artifact) and each face is cut as `ferops.runtime.FacePredictor` cuts it; a crop is converted to
grayscale and resized to 48x48 (`ferops.runtime.decode`).

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

Output (`OUTPUT_COLUMNS`; the one definition of the schema): one row a face, in input order, then
best detector score first:

- ``row``: the input row the face is in;
- ``box_x``, ``box_y``, ``box_w``, ``box_h``: the face box in the input image's pixels (x, y: top-left
  corner); a crop row's box is the whole image;
- ``face_score``: the detector's score in [0, 1]; null for a crop row (nothing was detected);
- ``prob_<class>``: one float column a class, the probabilities in full;
- ``label``: the predicted class, or ``unknown`` (below).

A photo with no face gives one row with its ``row`` and nulls everywhere else (JSON ``null``, not NaN).

The probabilities and the label come from `BundleModel.predict`, so the bundle's post-processing
applies in the order the runtime defines it (`ferops.runtime.bundle`): model outputs (a test-time
augmentation average goes here, once the runtime has one) -> temperature (``temperature`` in the
bundle metadata) -> softmax -> the unknown threshold. The label is ``unknown`` for a face whose top
probability is below the bundle's threshold when the request's ``reject_unknown`` param is true, or
when it is absent and the metadata's ``unknown.enabled`` is (params: `PARAMS`, part of the logged
signature, e.g. ``{"dataframe_split": ..., "params": {"reject_unknown": true, "detect": true}}``).

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
from dataclasses import dataclass
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
    FacePredictor,
    ImageDecodeError,
    open_image,
    prepare_face,
    prepare_faces,
)
from ferops.runtime.bundle import BUNDLE_ARTIFACT
from ferops.runtime.decode import array_to_image, to_rgb
from ferops.runtime.faces import BLAZEFACE_MODELS, DEFAULT_DETECTOR, locate_blazeface_model

IMAGE_COLUMN = "image"
REJECT_UNKNOWN = "reject_unknown"  # request param: None (absent) = the bundle metadata's unknown.enabled
DETECT = "detect"  # request param: None (absent) = detect on images larger than a crop
PARAMS = (REJECT_UNKNOWN, DETECT)
ROW_COLUMN = "row"
BOX_COLUMNS = ("box_x", "box_y", "box_w", "box_h")
FACE_SCORE_COLUMN = "face_score"
LABEL_COLUMN = "label"
PROB_PREFIX = "prob_"
IMAGE_SIZE = FACE_SIZE
BUNDLE_FILES = (MODEL_FILE, LABELS_FILE, METADATA_FILE)
# The detector's weights travel with the model (nothing is downloaded where it is served).
DETECTOR_ARTIFACT = "face_detector"
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


def request_params(params: Mapping[str, Any] | None) -> dict[str, bool | None]:
    """The request's `PARAMS`, each a bool or None when absent (the default the module doc gives).
    The server checks the types against the signature; in-process callers get the same check here."""
    params = dict(params or {})
    unknown = sorted(set(params) - set(PARAMS))
    if unknown:
        raise InvalidParams(f"unknown params {unknown}; supported: {list(PARAMS)}")
    out: dict[str, bool | None] = {}
    for name in PARAMS:
        value = params.get(name)
        if value is not None and not isinstance(value, (bool, np.bool_)):
            raise InvalidParams(f"params.{name} must be true or false, got {value!r}")
        out[name] = None if value is None else bool(value)
    return out


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


def detector_name(path: str | Path) -> str:
    """The BlazeFace variant of a vendored detector file, from its file name (as the weights package names it)."""
    for name, spec in BLAZEFACE_MODELS.items():
        if Path(spec.file).name == Path(path).name:
            return name
    raise ValueError(f"{path}: not a BlazeFace model file ({[Path(s.file).name for s in BLAZEFACE_MODELS.values()]})")


# -- inputs ------------------------------------------------------------------------------------
def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise InvalidImageInput(f"image is {width}x{height} = {width * height} pixels, more than the limit of {max_pixels}")


def open_row(value: Any, max_image_bytes: int = MAX_IMAGE_BYTES, max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """One row's image (encoded PNG/JPEG bytes, a base64 string of them, or an array) -> a decoded,
    upright PIL image (`ferops.runtime.decode`, the decoder training and the runtime use). Raises
    `InvalidImageInput` for input outside the limits (see the module doc) and for bytes that are
    not a complete PNG or JPEG."""
    if isinstance(value, np.ndarray) and value.dtype != object:
        if value.ndim >= 2:
            _check_pixels(int(value.shape[1]), int(value.shape[0]), max_pixels)
        return array_to_image(value)
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
        return open_image(value, formats=IMAGE_FORMATS, max_bytes=max_image_bytes, max_pixels=max_pixels)
    except ImageDecodeError as err:
        raise InvalidImageInput(str(err)) from err.__cause__


def decode_image(value: Any, max_image_bytes: int = MAX_IMAGE_BYTES, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """One row's image -> the uint8 [48,48] crop (`open_row`, then `ferops.runtime.prepare_face`)."""
    return prepare_face(open_row(value, max_image_bytes, max_pixels))


def _crop_array(model_input: Any, max_rows: int, max_pixels: int) -> np.ndarray | None:
    """A numpy batch of crops [N,H,W] / [N,H,W,1] -> uint8 [N,48,48]; None for any other input."""
    if not isinstance(model_input, np.ndarray) or model_input.dtype == object:
        return None
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


def input_rows(model_input: Any, max_rows: int = MAX_ROWS) -> list[Any]:
    """The rows of a pyfunc input (see the module doc), not yet decoded."""
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
    return values


def _open_row_named(i: int, value: Any, max_image_bytes: int, max_pixels: int) -> Image.Image:
    """`open_row` with its error naming row ``i``."""
    try:
        return open_row(value, max_image_bytes=max_image_bytes, max_pixels=max_pixels)
    except InvalidImageInput as err:
        raise InvalidImageInput(f"row {i}: {err.message}") from err.__cause__
    except (ValueError, TypeError) as err:  # an array row prepare_face refuses
        raise InvalidImageInput(f"row {i}: {err}") from err


def _check_rows(n: int, max_rows: int) -> None:
    if n > max_rows:
        raise InvalidImageInput(f"request has {n} rows, more than the limit of {max_rows} a request")


def encode_images(images: np.ndarray, fmt: str = "PNG", as_base64: bool = False) -> pd.DataFrame:
    """uint8 [N,48,48] (or [N,H,W,3] photos) -> the signature's DataFrame (PNG is lossless: predictions are unchanged)."""
    images = np.asarray(images)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    encoded = []
    for im in images:
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(im, dtype=np.uint8)).save(buf, format=fmt)
        data = buf.getvalue()
        encoded.append(base64.b64encode(data).decode("ascii") if as_base64 else data)
    return pd.DataFrame({IMAGE_COLUMN: encoded})


# -- outputs -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class FaceRow:
    """One output row before classification: the input row, the face box (None: no face found) and
    the detector's score (None: a crop, nothing was detected)."""

    row: int
    box: tuple[int, int, int, int] | None
    face_score: float | None = None


def prob_columns(class_names: list[str]) -> list[str]:
    return [f"{PROB_PREFIX}{c}" for c in class_names]


def output_columns(class_names: list[str]) -> list[str]:
    """The output schema's columns, in order (module doc)."""
    return [ROW_COLUMN, *BOX_COLUMNS, FACE_SCORE_COLUMN, *prob_columns(class_names), LABEL_COLUMN]


def predictions_frame(rows: list[FaceRow], probs: np.ndarray, labels: list[str], class_names: list[str]) -> pd.DataFrame:
    """The output frame: ``probs`` / ``labels`` belong to the rows with a box, in order. Columns
    with a missing value (a photo without a face, a crop's face score) hold None, not NaN, so that
    the scoring server's JSON has ``null`` (NaN is not JSON)."""
    probs = np.asarray(probs, dtype=np.float32).reshape(-1, len(class_names))
    found = [r for r in rows if r.box is not None]
    if len(found) != len(probs) or len(labels) != len(probs):
        raise ValueError(f"{len(found)} faces but {len(probs)} probability rows and {len(labels)} labels")
    data: dict[str, list[Any]] = {c: [] for c in output_columns(class_names)}
    it = iter(zip(probs, labels))
    for r in rows:
        data[ROW_COLUMN].append(r.row)
        data[FACE_SCORE_COLUMN].append(r.face_score)
        p, label = next(it) if r.box is not None else (None, None)
        for col, v in zip(BOX_COLUMNS, r.box or (None,) * 4):
            data[col].append(v)
        for j, col in enumerate(prob_columns(class_names)):
            data[col].append(None if p is None else float(p[j]))
        data[LABEL_COLUMN].append(label)
    df = pd.DataFrame({ROW_COLUMN: pd.Series(data[ROW_COLUMN], dtype="int64")})
    dtypes = {
        FACE_SCORE_COLUMN: "float64",
        **dict.fromkeys(prob_columns(class_names), "float32"),
        **dict.fromkeys(BOX_COLUMNS, "int64"),
    }
    for col in output_columns(class_names)[1:]:
        values = data[col]
        df[col] = pd.Series(values, dtype=object if any(v is None for v in values) else dtypes.get(col, object))
    return df


def model_signature(class_names: list[str]) -> ModelSignature:
    inputs = Schema([ColSpec(DataType.binary, IMAGE_COLUMN)])
    outputs = Schema(
        [ColSpec(DataType.long, ROW_COLUMN)]
        + [ColSpec(DataType.long, c, required=False) for c in BOX_COLUMNS]
        + [ColSpec(DataType.float, FACE_SCORE_COLUMN, required=False)]
        + [ColSpec(DataType.float, c, required=False) for c in prob_columns(class_names)]
        + [ColSpec(DataType.string, LABEL_COLUMN, required=False)]
    )
    params = ParamSchema([ParamSpec(REJECT_UNKNOWN, DataType.boolean, None), ParamSpec(DETECT, DataType.boolean, None)])
    return ModelSignature(inputs=inputs, outputs=outputs, params=params)


# -- the model ---------------------------------------------------------------------------------
class FERBundleModel(mlflow.pyfunc.PythonModel):
    """Loads the bundle and the detector once (`load_context`); `predict` decodes each row, finds the
    faces of photos, runs the int8 model once on all crops, tabulates (module doc)."""

    def __init__(self, max_rows: int | None = None, max_image_bytes: int | None = None, max_pixels: int | None = None) -> None:
        """Limits default to the ``FEROPS_MAX_*`` environment variables, else `MAX_ROWS`,
        `MAX_IMAGE_BYTES`, `MAX_IMAGE_PIXELS` (read when the model is built, i.e. loaded)."""
        self._predictor: FacePredictor | None = None
        self.class_names: list[str] = []
        self.max_rows = _limit("max_rows", max_rows, MAX_ROWS)
        self.max_image_bytes = _limit("max_image_bytes", max_image_bytes, MAX_IMAGE_BYTES)
        self.max_pixels = _limit("max_pixels", max_pixels, MAX_IMAGE_PIXELS)

    def load_context(self, context) -> None:
        detector = Path(context.artifacts[DETECTOR_ARTIFACT])
        self._predictor = FacePredictor(
            context.artifacts[BUNDLE_ARTIFACT],
            detector=detector_name(detector),
            detector_path=detector,
            max_pixels=self.max_pixels,
        )
        self.class_names = list(self._predictor.class_names)

    def _rows_and_crops(self, model_input: Any, detect: bool | None) -> tuple[list[FaceRow], np.ndarray]:
        assert self._predictor is not None
        crops = _crop_array(model_input, self.max_rows, self.max_pixels) if detect is not True else None
        if crops is not None:
            return [FaceRow(i, (0, 0, crops.shape[2], crops.shape[1])) for i in range(len(crops))], crops
        rows: list[FaceRow] = []
        parts: list[np.ndarray] = []
        for i, value in enumerate(input_rows(model_input, self.max_rows)):
            img = _open_row_named(i, value, self.max_image_bytes, self.max_pixels)
            is_photo = detect if detect is not None else max(img.width, img.height) > IMAGE_SIZE
            if not is_photo:
                rows.append(FaceRow(i, (0, 0, img.width, img.height)))
                parts.append(prepare_face(img)[None])
                continue
            faces, face_crops = self._predictor.face_crops(to_rgb(img))
            rows.extend(FaceRow(i, face.box, round(face.score, 4)) for face in faces)
            rows.extend([FaceRow(i, None)] if not faces else [])
            parts.append(face_crops)
        crops = np.concatenate(parts) if parts else np.zeros((0, IMAGE_SIZE, IMAGE_SIZE), np.uint8)
        return rows, crops

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        if self._predictor is None:
            raise RuntimeError("model not loaded: load it with mlflow.pyfunc.load_model")
        asked = request_params(params)
        rows, crops = self._rows_and_crops(model_input, asked[DETECT])
        probs, labels = np.zeros((0, len(self.class_names)), np.float32), []
        if len(crops):
            try:  # the runtime's post-processing: temperature, then the unknown threshold when asked
                probs, labels = self._predictor.model.predict(crops, reject_unknown=asked[REJECT_UNKNOWN])
            except BundleError as err:  # e.g. reject_unknown asked of a bundle without a threshold
                raise InvalidParams(str(err)) from err
        return predictions_frame(rows, probs, labels, self.class_names)


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
    # not shipped_bundle/: the package's own model (1.2 MB), never read by the model served here
    shutil.copytree(src_pkg / "runtime", pkg / "runtime", ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "shipped_bundle"))
    return pkg


def model_artifacts(bundle_dir: str | Path) -> dict[str, str]:
    """What `FERBundleModel.load_context` reads: the bundle and the face detector's weights (the
    installed BlazeFace file, copied into the logged model)."""
    return {BUNDLE_ARTIFACT: str(bundle_dir), DETECTOR_ARTIFACT: str(locate_blazeface_model(DEFAULT_DETECTOR))}


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
    artifacts = model_artifacts(bundle_dir)
    for key, path in (extra_artifacts or {}).items():
        if key in (BUNDLE_ARTIFACT, DETECTOR_ARTIFACT):
            raise ValueError(f"{key!r} is reserved (the int8 bundle and the face detector)")
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
