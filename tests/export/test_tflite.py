"""onnx2tf SavedModel / fp32 TFLite (NHWC) and the full-int8 TFLite: dtypes, quantisation, parity."""

from __future__ import annotations

import numpy as np
import pytest

from ferops.export.chain import parity
from ferops.export.onnx import torch_logits
from ferops.export.tflite import select_calibration
from ferops.export.tflite_reader import read_tflite_ops
from ferops.runtime.tflite import TFLiteModel, dequantize, quantize


def test_saved_model_and_fp32_tflite_are_nhwc_and_match_pytorch(exported):
    exports = exported["out_dir"] / "exports"
    assert (exports / "saved_model" / "saved_model.pb").is_file()
    fp32 = TFLiteModel(exports / "model_fp32.tflite")
    assert fp32.input.shape == (1, 48, 48, 1) and fp32.input.dtype == np.float32
    ops, _ = read_tflite_ops(exports / "model_fp32.tflite")
    assert "TRANSPOSE" not in {o.name for o in ops}  # onnx2tf: one NHWC graph, no layout shuffles
    data = exported["data"]
    p = parity(torch_logits(exported["model"], data["eval_x"]), fp32.predict_logits(data["eval_x"]))
    assert p["top1_agreement"] == 1.0
    assert p["max_abs_logit_diff"] < 1e-3


def test_int8_model_is_full_integer_with_exact_pixel_input(exported):
    path = exported["out_dir"] / "exports" / "model_int8.tflite"
    model = TFLiteModel(path)
    assert model.input.dtype == np.int8 and model.output.dtype == np.int8
    assert model.input.shape == (1, 48, 48, 1) and model.output.shape == (1, 3)
    # raw 0..255 pixels map to integers exactly: q = pixel - 128
    assert model.input.scale == 1.0 and model.input.zero_point == -128
    q = exported["report"]["quantization"]
    assert q["input"]["scale"] == 1.0 and q["input"]["zero_point"] == -128
    assert q["output"]["scale"] == pytest.approx(model.output.scale) and q["output"]["zero_point"] == model.output.zero_point
    ops, _ = read_tflite_ops(path)
    for op in ops:
        for t in op.inputs + op.outputs:
            if not t.constant:
                assert t.dtype == "INT8", (op.name, t.name, t.dtype)


def test_int8_agrees_with_pytorch_on_eval_data(exported):
    m = exported["report"]["metrics"]
    assert m["tflite_int8"]["top1_agreement"] >= 0.98
    assert m["tflite_int8"]["accuracy_drop_points"] <= 1.0
    assert m["pytorch"]["accuracy"] > 0.9  # the tiny model did learn, so agreement is meaningful
    data = exported["data"]
    int8 = TFLiteModel(exported["out_dir"] / "exports" / "model_int8.tflite").predict_logits(data["eval_x"])
    ref = torch_logits(exported["model"], data["eval_x"])
    p = parity(ref, int8)
    assert p["top1_agreement"] == pytest.approx(m["tflite_int8"]["top1_agreement"])
    # int8 logits stay within a few output quantisation steps of the float ones
    assert p["mean_abs_logit_diff"] < 0.1 * np.abs(ref).mean()


def test_quantize_roundtrip_of_pixels_is_exact(exported):
    spec = TFLiteModel(exported["out_dir"] / "exports" / "model_int8.tflite").input
    pixels = np.arange(256, dtype=np.float32)
    q = quantize(pixels, spec)
    assert q.dtype == np.int8 and q.min() == -128 and q.max() == 127
    np.testing.assert_array_equal(dequantize(q, spec), pixels)


def test_select_calibration_is_stratified_and_deterministic():
    labels = np.array([0] * 700 + [1] * 200 + [2] * 95 + [3] * 5)
    idx = select_calibration(labels, 100, seed=3)
    assert len(idx) == 100 and len(set(idx.tolist())) == 100
    counts = np.bincount(labels[idx], minlength=4)
    assert counts.tolist() == [70, 20, 9, 1]  # proportional, and the 0.5% class still gets one image
    np.testing.assert_array_equal(idx, select_calibration(labels, 100, seed=3))
    assert not np.array_equal(idx, select_calibration(labels, 100, seed=4))
    # tiny budgets still cover every class, and n >= N returns everything
    assert set(labels[select_calibration(labels, 4, seed=0)].tolist()) == {0, 1, 2, 3}
    assert sorted(select_calibration(labels, 5000).tolist()) == list(range(1000))


def test_calibration_counts_are_recorded(exported):
    q = exported["report"]["quantization"]
    assert sum(q["calibration_class_counts"].values()) == q["n_calibration"] == 96
    assert set(q["calibration_class_counts"]) == {"top", "bottom", "left"}
