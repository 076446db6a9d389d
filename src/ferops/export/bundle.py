"""Write the deployment bundle that :class:`ferops.runtime.BundleModel` reads.

``model_int8.tflite`` + ``labels.txt`` + ``model_metadata.json`` (+ ``model_int8_edgetpu.tflite`` when
edgetpu_compiler ran). Input/output shape, dtype, scale and zero point are read from the .tflite itself,
so the metadata cannot disagree with the model.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ferops.runtime.bundle import (
    BUNDLE_FORMAT,
    BUNDLE_FORMAT_VERSION,
    EDGETPU_MODEL_FILE,
    LABELS_FILE,
    METADATA_FILE,
    MODEL_FILE,
    BundleModel,
)
from ferops.runtime.preprocess import FACE_SIZE
from ferops.runtime.tflite import TFLiteModel

__all__ = ["POSTPROCESSING_KEYS", "write_bundle"]

# "tta", "temperature" and "unknown" are read by the runtime; "calibration" records how T was fitted.
POSTPROCESSING_KEYS = ("tta", "temperature", "calibration", "unknown")


def _jsonable(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (str, int, float, bool)) or x is None:
        return x
    if hasattr(x, "tolist"):
        return x.tolist()
    return str(x)


def write_bundle(
    bundle_dir: str | Path,
    int8_tflite: str | Path,
    class_names: Sequence[str],
    *,
    preprocessing: Mapping[str, Any] | None = None,
    softmax_in_model: bool = False,
    source: Mapping[str, Any] | None = None,
    quantization: Mapping[str, Any] | None = None,
    edgetpu: Mapping[str, Any] | None = None,
    edgetpu_tflite: str | Path | None = None,
    postprocessing: Mapping[str, Any] | None = None,
    class_map: Mapping[str, Any] | None = None,
) -> Path:
    """Create ``bundle_dir`` (replacing an older bundle there) and check that it loads.

    ``preprocessing``: the model's in-model preprocessing (``meta["preprocessing"]``: input_size,
    in_chans, mean, std, ...); ``source``: lineage such as ``{"run_id", "checkpoint", "model_name"}``;
    ``quantization``: calibration facts; ``edgetpu``: the compatibility summary; ``edgetpu_tflite``:
    edgetpu_compiler's output for the same model, which the runtime runs with the EdgeTPU delegate;
    ``postprocessing``: top-level ``temperature`` / ``calibration`` / ``unknown`` entries
    (:data:`POSTPROCESSING_KEYS`), checked by the runtime when the bundle is loaded back;
    ``class_map``: ``ClassMap.to_config()`` of the training data (how FER-7 labels map onto
    ``class_names``), read by ``python -m ferops.evaluate`` to score the bundle on FER-labelled data.
    """
    bundle_dir = Path(bundle_dir)
    names = [str(c) for c in class_names]
    if not names or any(not c.strip() or "\n" in c for c in names):
        raise ValueError(f"class names must be non-empty single-line strings, got {names}")
    model = TFLiteModel(int8_tflite)
    for key, spec in (("input", model.input), ("output", model.output)):
        if not spec.quantized:
            raise ValueError(f"{int8_tflite}: {key} is {spec.dtype} without quantisation; the bundle needs a full-integer model")
    if model.num_outputs != len(names):
        raise ValueError(f"{int8_tflite}: {model.num_outputs} outputs but {len(names)} class names")

    if bundle_dir.exists():
        shutil.rmtree(bundle_dir)
    bundle_dir.mkdir(parents=True)
    shutil.copyfile(int8_tflite, bundle_dir / MODEL_FILE)
    if edgetpu_tflite is not None:
        shutil.copyfile(edgetpu_tflite, bundle_dir / EDGETPU_MODEL_FILE)
    (bundle_dir / LABELS_FILE).write_text("\n".join(names) + "\n", encoding="utf-8")

    size = model.image_size[0]
    metadata = {
        "format": BUNDLE_FORMAT,
        "format_version": BUNDLE_FORMAT_VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "model_file": MODEL_FILE,
        "edgetpu_model_file": EDGETPU_MODEL_FILE if edgetpu_tflite is not None else None,
        "input": {
            **_io(model.input),
            "layout": "NHWC",
            "value_range": [0, 255],
            "description": "one grayscale face crop, raw pixels 0..255 (quantised with the scale and zero point below)",
        },
        "output": {
            **_io(model.output),
            "kind": "probabilities" if softmax_in_model else "logits",
        },
        "softmax_in_model": bool(softmax_in_model),
        "class_names": names,
        "num_classes": len(names),
        "class_map": _jsonable(dict(class_map)) if class_map is not None else None,
        "preprocessing": {
            "outside_model": f"grayscale face crop resized to {size}x{size}, uint8 0..255 (ferops.runtime.prepare_face)",
            "resize": {"size": [size, size], "method": "PIL bilinear (antialiased when shrinking)"},
            "color": "grayscale; RGB -> L = 0.299 R + 0.587 G + 0.114 B (ITU-R 601-2, PIL 'L')",
            "channel_order": "single gray channel, NHWC [1, H, W, 1]",
            "normalization": "inside the model (raw pixels in, no scaling outside)",
            "in_model": _jsonable(dict(preprocessing or {})),
        },
        "source": _jsonable(dict(source or {})),
        "quantization": _jsonable(dict(quantization or {})),
        "edgetpu": _jsonable(dict(edgetpu or {})),
    }
    # top-level keys of the runtime's post-processing (ferops.runtime.bundle); only those, so that a
    # caller cannot overwrite the facts read from the model above
    extra = sorted(set(postprocessing or {}) - set(POSTPROCESSING_KEYS))
    if extra:
        raise ValueError(f"postprocessing keys {extra} are not bundle post-processing keys {list(POSTPROCESSING_KEYS)}")
    metadata.update(_jsonable(dict(postprocessing or {})))
    if size != FACE_SIZE:
        metadata["preprocessing"]["note"] = f"model input is {size}x{size}, not the default {FACE_SIZE}x{FACE_SIZE}"
    (bundle_dir / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
    BundleModel(bundle_dir)  # the runtime must accept what we wrote
    return bundle_dir


def _io(spec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "shape": list(spec.shape),
        "dtype": spec.dtype.name,
        "quantization": {"scale": float(spec.scale), "zero_point": int(spec.zero_point)},
    }
