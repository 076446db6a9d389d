"""EdgeTPU: static compatibility check on a compatible and an incompatible model, compiler log parsing."""

from __future__ import annotations

import os
import stat

import pytest
import torch
from torch import nn

from ferops.export import ExportConfig, ExportGateError, enforce_export_gates
from ferops.export.edgetpu import check_edgetpu
from ferops.export.edgetpu_compiler import find_edgetpu_compiler, parse_compiler_log, run_edgetpu_compiler
from ferops.export.onnx import export_onnx
from ferops.export.tensorflow import onnx_to_tensorflow
from ferops.export.tflite import quantize_int8


@pytest.fixture(scope="module")
def hardswish_int8(tmp_path_factory, tiny_data, tiny_net_cls):
    """A MobileNetV3-like tiny CNN through the real chain (ONNX -> onnx2tf -> int8): nn.Hardswish, and
    timm-style preprocessing (bilinear resize 48 -> 64, Tensor.repeat to 3 channels), which the raw
    TorchScript export turns into Expand/Tile that onnx2tf cannot convert without simplify_onnx."""
    torch.manual_seed(0)
    model = tiny_net_cls(act=nn.Hardswish, in_chans=3, input_size=64).eval()
    out = tmp_path_factory.mktemp("hardswish")
    onnx_path = export_onnx(model, out / "model.onnx")
    tf_art = onnx_to_tensorflow(onnx_path, out / "saved_model")
    path = out / "model_int8.tflite"
    quantize_int8(tf_art.saved_model_dir, tiny_data["train_x"][:32], path)
    return path


def test_compatible_model_maps_completely(exported):
    report = check_edgetpu(exported["out_dir"] / "exports" / "model_int8.tflite")
    assert report.compatible, report.summary()
    assert report.first_cpu_op is None
    assert report.mapped_fraction == 1.0 and report.n_mapped == report.n_ops
    ops = [o.op for o in report.ops]
    assert {"CONV_2D", "MAX_POOL_2D", "MEAN", "FULLY_CONNECTED"} <= set(ops)
    assert exported["report"]["metrics"]["edgetpu"]["compatible"] is True


def test_hardswish_is_reported_as_first_cpu_op(hardswish_int8):
    report = check_edgetpu(hardswish_int8)
    assert not report.compatible
    first = report.first_cpu_op
    assert first is not None and first.op == "HARD_SWISH"
    assert "not in the EdgeTPU supported-op list" in first.reasons[0]
    ops = [o.op for o in report.ops]
    assert ops.index("HARD_SWISH") == first.index
    # everything before the first CPU op maps, nothing after it does (the compiler's partition)
    assert all(o.mapped for o in report.ops[: first.index])
    assert not any(o.mapped for o in report.ops[first.index :])
    assert report.n_mapped == first.index and 0 < report.mapped_fraction < 1
    # later ops that are supported on their own are still listed as such
    assert any(o.supported and not o.mapped for o in report.ops[first.index + 1 :])
    assert "HARD_SWISH" in report.summary()
    # the preprocessing before it maps: resize, the 3-channel repeat as a concatenation, normalisation
    assert ops[:3] == ["RESIZE_BILINEAR", "CONCATENATION", "MUL"] and "TILE" not in ops


def test_float_model_falls_back_at_its_first_op(exported):
    report = check_edgetpu(exported["out_dir"] / "exports" / "model_fp32.tflite")
    assert not report.compatible
    assert report.first_cpu_op.index == 0
    assert any("FLOAT32" in r for r in report.first_cpu_op.reasons)
    assert report.n_mapped == 0


def test_require_edgetpu_compatible_gate(exported, hardswish_int8):
    metrics = exported["report"]["metrics"]
    cfg = ExportConfig.from_mapping({"require_edgetpu_compatible": True})
    ok = enforce_export_gates(metrics, cfg, check_edgetpu(exported["out_dir"] / "exports" / "model_int8.tflite").to_dict())
    assert all(r.passed for r in ok) and "edgetpu_mapped_ops" in {r.name for r in ok}
    bad = check_edgetpu(hardswish_int8).to_dict()
    with pytest.raises(ExportGateError) as err:
        enforce_export_gates(metrics, cfg, bad)
    msg = str(err.value)
    assert "edgetpu_mapped_ops" in msg and "HARD_SWISH" in msg and "must be >= 100.00%" in msg
    # without the flag the same model passes the gates
    assert all(r.passed for r in enforce_export_gates(metrics, ExportConfig(), bad))


COMPILER_LOG_PARTIAL = """Edge TPU Compiler version 16.0.384591198
Started a compilation timeout timer of 180 seconds.

Model compiled successfully in 45 ms.

Input model: model_int8.tflite
Input size: 6.05KiB
Output model: model_int8_edgetpu.tflite
Output size: 40.71KiB
On-chip memory used for caching model parameters: 3.25KiB
On-chip memory remaining for caching model parameters: 7.99MiB
Off-chip memory used for streaming uncached model parameters: 0.00B
Number of Edge TPU subgraphs: 1
Total number of operations: 10
Operation log: model_int8_edgetpu.log

Model successfully compiled but not all operations are supported by the Edge TPU. A percentage of the model will instead run on the CPU, which is slower. If possible, consider updating your model to use only operations supported by the Edge TPU. For details, visit g.co/coral/model-reqs.
Number of operations that will run on Edge TPU: 3
Number of operations that will run on CPU: 7

Operator                       Count      Status

MUL                            1          Mapped to Edge TPU
SUB                            1          Mapped to Edge TPU
CONV_2D                        1          Mapped to Edge TPU
HARD_SWISH                     2          Operation not supported
CONV_2D                        1          More than one subgraph is not supported
MAX_POOL_2D                    2          More than one subgraph is not supported
MEAN                           1          More than one subgraph is not supported
FULLY_CONNECTED                1          More than one subgraph is not supported
"""


def test_parse_compiler_log():
    r = parse_compiler_log(COMPILER_LOG_PARTIAL)
    assert r["ok"] and r["version"] == "16.0.384591198"
    assert (r["ops_on_tpu"], r["ops_on_cpu"], r["total_ops"], r["subgraphs"]) == (3, 7, 10, 1)
    assert r["on_chip_memory_used_bytes"] == int(3.25 * 1024)
    assert r["off_chip_memory_used_bytes"] == 0
    not_mapped = {o["op"] for o in r["operators"] if not o["mapped"]}
    assert "HARD_SWISH" in not_mapped and len(r["operators"]) == 8


def test_fake_compiler_on_path_is_run_and_decides_the_gate(exported, tmp_path, monkeypatch):
    """With `edgetpu_compiler` on PATH its log is parsed; its verdict overrides the static check."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log_file = tmp_path / "log.txt"
    log_file.write_text(COMPILER_LOG_PARTIAL)
    script = bin_dir / "edgetpu_compiler"
    script.write_text(
        "#!/bin/sh\n"
        'out=""; while [ $# -gt 1 ]; do if [ "$1" = "-o" ]; then out="$2"; shift; fi; shift; done\n'
        f'cat "{log_file}"\n'
        'cp "$1" "$out/$(basename "$1" .tflite)_edgetpu.tflite"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    compiler = find_edgetpu_compiler("auto")
    assert compiler == str(script)
    assert find_edgetpu_compiler("off") is None
    int8 = exported["out_dir"] / "exports" / "model_int8.tflite"
    result = run_edgetpu_compiler(int8, tmp_path / "edgetpu", compiler)
    assert result["ok"] and result["returncode"] == 0 and result["compiled_model"]
    assert (tmp_path / "edgetpu" / "edgetpu_compiler.log").read_text().startswith("Edge TPU Compiler")
    report = check_edgetpu(int8)
    assert report.compatible  # static check alone
    report.compiler = result
    assert not report.compatible  # the compiler says 7 ops run on the CPU
    cfg = ExportConfig.from_mapping({"require_edgetpu_compatible": True})
    with pytest.raises(ExportGateError, match="HARD_SWISH"):
        enforce_export_gates(exported["report"]["metrics"], cfg, report.to_dict())


def test_missing_explicit_compiler_path_is_an_error():
    with pytest.raises(FileNotFoundError):
        find_edgetpu_compiler("/nonexistent/edgetpu_compiler")


def test_failing_compiler_is_not_compatible(exported, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "edgetpu_compiler"
    script.write_text(
        "#!/bin/sh\necho 'Edge TPU Compiler version 16.0.384591198'\necho 'Invalid model: not quantized' >&2\nexit 1\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    int8 = exported["out_dir"] / "exports" / "model_int8.tflite"
    report = check_edgetpu(int8)
    report.compiler = run_edgetpu_compiler(int8, tmp_path / "out", str(script))
    assert report.compiler["returncode"] == 1 and not report.compiler["ok"]
    assert not report.compatible and "FAILED" in report.summary()
    cfg = ExportConfig.from_mapping({"require_edgetpu_compatible": True})
    with pytest.raises(ExportGateError, match="edgetpu_compiler failed"):
        enforce_export_gates(exported["report"]["metrics"], cfg, report.to_dict())
