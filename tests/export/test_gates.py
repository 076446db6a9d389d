"""Export gates: a failed gate raises ExportGateError naming the gate, the value, the threshold and the miss."""

from __future__ import annotations

import copy

import pytest

from ferops.export import ExportConfig, ExportGateError, enforce_export_gates, evaluate_export_gates


def _metrics(acc_pt=0.80, acc_int8=0.79, agree=0.99, onnx_diff=1e-6, tfl_diff=1e-5) -> dict:
    return {
        "pytorch": {"accuracy": acc_pt},
        "onnx": {"max_abs_logit_diff": onnx_diff},
        "tflite_fp32": {"max_abs_logit_diff": tfl_diff},
        "tflite_int8": {"accuracy": acc_int8, "accuracy_drop_points": 100 * (acc_pt - acc_int8), "top1_agreement": agree},
    }


def test_passing_metrics_pass_every_gate():
    results = enforce_export_gates(_metrics(), ExportConfig())
    assert {r.name for r in results} == {
        "int8_accuracy_drop",
        "int8_top1_agreement",
        "onnx_max_abs_logit_diff",
        "tflite_fp32_max_abs_logit_diff",
    }
    assert all(r.passed for r in results)


def test_accuracy_drop_gate_message():
    with pytest.raises(ExportGateError) as err:
        enforce_export_gates(_metrics(acc_pt=0.80, acc_int8=0.776), ExportConfig())
    msg = str(err.value)
    assert "int8_accuracy_drop = 2.40 points" in msg
    assert "must be <= 1.00 points" in msg
    assert "missed by 1.40 points" in msg
    assert [f.name for f in err.value.failures] == ["int8_accuracy_drop"]


def test_agreement_gate_message_and_several_failures():
    with pytest.raises(ExportGateError) as err:
        enforce_export_gates(_metrics(agree=0.95, onnx_diff=0.5), ExportConfig())
    msg = str(err.value)
    assert "int8_top1_agreement = 95.00%, must be >= 98.00% (missed by 3.00%)" in msg
    assert "onnx_max_abs_logit_diff = 0.5, must be <= 0.001" in msg
    assert {f.name for f in err.value.failures} == {"int8_top1_agreement", "onnx_max_abs_logit_diff"}


def test_thresholds_come_from_config_and_none_disables():
    cfg = ExportConfig.from_mapping({"gates": {"max_int8_acc_drop_points": 5.0, "min_int8_agreement": None}})
    results = enforce_export_gates(_metrics(acc_int8=0.77, agree=0.5), cfg)
    assert all(r.passed for r in results)
    assert "int8_top1_agreement" not in {r.name for r in results}


def test_enforce_false_records_without_raising():
    cfg = ExportConfig.from_mapping({"gates": {"enforce": False}})
    results = enforce_export_gates(_metrics(agree=0.5), cfg)
    failed = [r for r in results if not r.passed]
    assert [r.name for r in failed] == ["int8_top1_agreement"]
    assert failed[0].miss == pytest.approx(0.48)


def test_real_export_metrics_fail_a_stricter_gate(exported):
    """The gates read the real metrics.json: an impossible threshold fails with the measured value."""
    metrics = copy.deepcopy(exported["report"]["metrics"])
    measured = metrics["onnx"]["max_abs_logit_diff"]
    cfg = ExportConfig.from_mapping({"gates": {"max_onnx_logit_diff": measured / 2 if measured > 0 else -1.0}})
    with pytest.raises(ExportGateError, match="onnx_max_abs_logit_diff"):
        enforce_export_gates(metrics, cfg)
    assert all(r.passed for r in evaluate_export_gates(metrics, ExportConfig()))


def test_old_accuracy_drop_key_still_accepted_with_a_warning():
    with pytest.warns(FutureWarning, match="max_int8_acc_drop_points"):
        cfg = ExportConfig.from_mapping({"gates": {"max_accuracy_drop": 5.0}})
    assert cfg.gates.max_int8_acc_drop_points == 5.0 and cfg.gates.max_accuracy_drop is None
