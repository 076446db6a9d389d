"""Full-integer (int8) TFLite from the onnx2tf SavedModel, calibrated on training images.

How: ``tf.lite.TFLiteConverter.from_saved_model`` with a representative dataset,
``target_spec.supported_ops = [TFLITE_BUILTINS_INT8]`` and int8/uint8
``inference_input_type`` / ``inference_output_type``.

Why not onnx2tf's own ``output_integer_quantized_tflite`` (``-oiqt``): it allows
``SELECT_TF_OPS`` next to the int8 builtins (a float TF op would slip in silently instead of failing
the conversion), it logs a failed full-integer conversion as a warning and goes on, it converts
four variants (int8, full int8, int16-activation x2) where we need one (time on a 2-core machine),
it normalises the calibration arrays with its own mean/std (our normalisation is inside the model),
and without custom calibration data it downloads sample images. Calling the converter ourselves
on the same SavedModel is a dozen lines and fails loudly.

Calibration data: raw 0..255 pixels (the model's own input), NHWC ``[1, 48, 48, 1]`` float32,
``n_calibration`` training images stratified by class (:func:`select_calibration`). With
``pin_input_range`` one 0 and one 255 pixel are written into the first calibration image, so the
input range is exactly [0, 255]: scale 1.0 with zero point -128 (int8) or 0 (uint8), i.e. raw pixels
quantise without rounding. The scale and zero point actually written are read back from the model.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from ferops.data.splits import calibration_indices
from ferops.runtime.tflite import TFLiteModel

__all__ = ["quantize_int8", "select_calibration"]

log = logging.getLogger(__name__)


def select_calibration(labels: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """``n`` row indices stratified by class (`ferops.data.calibration_indices`), returned in
    class-interleaved order so any prefix is roughly balanced too."""
    labels = np.asarray(labels).astype(np.int64)
    if labels.shape[0] == 0:
        raise ValueError("no calibration images")
    picked = np.random.default_rng(seed).permutation(calibration_indices(labels, n, seed=seed))
    per_class = [picked[labels[picked] == c] for c in np.unique(labels[picked])]
    # interleave: class 0 row 0, class 1 row 0, ..., class 0 row 1, ...
    depth = max(len(p) for p in per_class)
    return np.asarray([p[j] for j in range(depth) for p in per_class if j < len(p)], dtype=np.int64)


def quantize_int8(
    saved_model_dir: str | Path,
    calib_images: np.ndarray,
    out_path: str | Path,
    *,
    input_dtype: str = "int8",
    output_dtype: str = "int8",
    pin_input_range: bool = True,
) -> dict:
    """Convert the SavedModel to a full-int8 TFLite at ``out_path``; returns its input/output quantisation:
    ``{"input": {"dtype", "shape", "scale", "zero_point", "name"}, "output": {...}, "n_calibration": int}``."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    io_types = {"int8": tf.int8, "uint8": tf.uint8}
    if input_dtype not in io_types or output_dtype not in io_types:
        raise ValueError(f"input/output dtype must be int8 or uint8, got {input_dtype!r}/{output_dtype!r}")
    calib = np.asarray(calib_images)
    if calib.ndim == 4 and calib.shape[-1] == 1:
        calib = calib[..., 0]
    if calib.ndim != 3 or calib.shape[0] == 0:
        raise ValueError(f"calibration images must be [N, H, W] with N > 0, got shape {list(calib.shape)}")
    calib = calib.astype(np.float32)[..., None]  # NHWC raw pixels
    if pin_input_range:
        calib = calib.copy()
        calib[0].flat[0] = 0.0
        calib[0].flat[1] = 255.0

    def representative_dataset():
        for i in range(calib.shape[0]):
            yield [calib[i : i + 1]]

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = io_types[input_dtype]
    converter.inference_output_type = io_types[output_dtype]
    flatbuffer = converter.convert()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_bytes(flatbuffer)

    model = TFLiteModel(out_path)
    info = {"input": model.input.to_dict(), "output": model.output.to_dict(), "n_calibration": int(calib.shape[0])}
    info["input"]["exact_pixels"] = bool(model.input.scale == 1.0)
    if pin_input_range and model.input.scale != 1.0:
        log.warning("int8 input scale is %r, not 1.0: raw pixels are rounded when quantised", model.input.scale)
    return info
