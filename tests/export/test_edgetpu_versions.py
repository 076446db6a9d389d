"""EdgeTPU operator versions and the parameter cache: the default fer_vgg int8 export passes the versioned
check, a file with a too-new op version fails it naming op, version and limit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from ferops.export import ExportConfig, ExportGateError, enforce_export_gates
from ferops.export import edgetpu as edgetpu_mod
from ferops.export.edgetpu import check_edgetpu
from ferops.export.edgetpu_op_versions import COMPILER_RUNTIME, MIN_RUNTIME, max_version, min_runtime, version_issue
from ferops.export.onnx import export_onnx
from ferops.export.tensorflow import onnx_to_tensorflow
from ferops.export.tflite import quantize_int8
from ferops.export.tflite_reader import read_tflite_ops

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def fer_vgg_int8(tmp_path_factory, tiny_data, tiny_model) -> Path:
    """The default edge model (conf/model/fer_vgg.yaml, as configured) through ONNX -> onnx2tf -> int8.
    Untrained: operator versions depend on the graph and the converter, not on the weights.
    ``tiny_model`` is requested so that the session's torch training runs before TensorFlow loads: in
    this environment a ``torch.optim.Adam`` built after ``import tensorflow`` segfaults."""
    from ferops.models.checkpoint import DeployableModel
    from ferops.models.factory import build_model
    from ferops.models.preprocess import Preprocess

    cfg = yaml.safe_load((ROOT / "conf" / "model" / "fer_vgg.yaml").read_text())
    torch.manual_seed(0)
    net = build_model(
        cfg["name"],
        num_classes=7,
        in_chans=1,
        dropout=cfg["dropout"],
        head_hidden=cfg["head_hidden"],
        backbone_kwargs=cfg["backbone_kwargs"],
    )
    model = DeployableModel(Preprocess(48, 1), net).eval()
    out = tmp_path_factory.mktemp("fer_vgg")
    tf_art = onnx_to_tensorflow(export_onnx(model, out / "model.onnx"), out / "saved_model")
    path = out / "model_int8.tflite"
    quantize_int8(tf_art.saved_model_dir, tiny_data["train_x"][:32], path)
    return path


def _with_op_version(src: Path, dst: Path, op: str, version: int) -> Path:
    """Copy of a .tflite with every ``op`` operator code set to ``version`` (re-packed through the schema)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(src.read_bytes()), 0)
    code = getattr(schema.BuiltinOperator, op)
    hits = [c for c in model.operatorCodes if max(c.builtinCode, c.deprecatedBuiltinCode) == code]
    assert hits, f"{src} has no {op}"
    for c in hits:
        c.version = version
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    dst.write_bytes(bytes(builder.Output()))
    return dst


def test_version_table_limits_at_the_cutoff():
    assert COMPILER_RUNTIME == "2.5.0"
    # the issue's evidence: compiler 16 rejects these, so each must lie above its limit
    for op, version in [("CONV_2D", 6), ("TRANSPOSE_CONV", 4), ("EXP", 2), ("QUANTIZE", 3)]:
        assert version > max_version(op), op
    # ... and accepts REVERSE_V2 v3 (runtime 2.5.0), which compiler 15 rejected
    assert min_runtime("REVERSE_V2", 3) == "2.5.0" and max_version("REVERSE_V2") == 3
    assert (max_version("CONV_2D"), max_version("FULLY_CONNECTED"), max_version("DEPTHWISE_CONV_2D")) == (5, 9, 6)
    assert max_version("GELU") == 0  # no version old enough
    assert max_version("CUSTOM:edgetpu-custom-op") is None and version_issue("CUSTOM:edgetpu-custom-op", 1) is None
    assert max_version("BROADCAST_TO") == 3 and min_runtime("BROADCAST_TO", 1) is None
    # every row is a sequence of runtime versions that never goes back in time
    for op, rts in MIN_RUNTIME.items():
        keys = [tuple(int(p) for p in rt.split(".")) for rt in rts if rt is not None]
        assert keys == sorted(keys), op


def test_default_fer_vgg_export_passes_the_versioned_check(fer_vgg_int8):
    ops, _ = read_tflite_ops(fer_vgg_int8)
    report = check_edgetpu(fer_vgg_int8)
    assert report.compatible, report.summary()
    assert report.too_new_ops == [] and report.n_mapped == report.n_ops
    versions = report.op_versions()
    assert {v["op"] for v in versions} >= {"CONV_2D", "MAX_POOL_2D", "MEAN", "FULLY_CONNECTED"}
    for v in versions:  # every op is in the table and within its limit
        assert v["limit"] is not None and 1 <= v["version"] <= v["limit"], v
    assert [o.version for o in report.ops] == [o.version for o in ops]
    # parameters: every conv / dense weight and bias once, a fraction of the cache for this model
    weights = {t.buffer: t.nbytes for o in ops for t in o.inputs if t.constant}
    assert report.parameter_bytes == sum(weights.values()) > 256 * 128 * 9  # at least the last conv's int8 kernel
    assert report.parameter_bytes < edgetpu_mod.ON_CHIP_CACHE_BYTES and report.warnings == []
    d = report.to_dict()
    assert d["version_cutoff"]["tflite_runtime"] == "2.5.0" and d["op_versions"] == versions
    assert "MiB of the 8 MiB on-chip cache" in report.summary()


def test_too_new_op_version_fails_naming_op_version_and_limit(fer_vgg_int8, tmp_path, exported):
    path = _with_op_version(fer_vgg_int8, tmp_path / "conv_v6.tflite", "CONV_2D", 6)
    assert {o.version for o in read_tflite_ops(path)[0] if o.name == "CONV_2D"} == {6}
    report = check_edgetpu(path)
    assert not report.compatible
    assert report.too_new_ops and {(t["op"], t["version"], t["limit"]) for t in report.too_new_ops} == {("CONV_2D", 6, 5)}
    msg = report.summary()
    assert "CONV_2D version 6" in msg and "limit version 5" in msg and "TF Lite 2.9.0" in msg, msg
    # the compiler stops parsing: nothing maps, not even the ops before the first conv
    assert report.n_mapped == 0 and report.mapped_fraction == 0.0 and report.first_cpu_op is None
    conv = next(o for o in report.ops if o.op == "CONV_2D")
    assert not conv.supported and "CONV_2D version 6" in conv.reasons[0] and conv.version_limit == 5
    # and the export gate says so
    cfg = ExportConfig.from_mapping({"require_edgetpu_compatible": True})
    with pytest.raises(ExportGateError, match=r"CONV_2D version 6 is too new .* limit version 5"):
        enforce_export_gates(exported["report"]["metrics"], cfg, report.to_dict())
    # the unpatched file still passes: the patch, not the re-packing, makes the difference
    assert check_edgetpu(_with_op_version(fer_vgg_int8, tmp_path / "conv_v3.tflite", "CONV_2D", 3)).compatible


def test_op_version_beyond_the_table_is_too_new(fer_vgg_int8, tmp_path):
    """A version newer than the table's source (a future TF) cannot be older than the cutoff."""
    path = _with_op_version(fer_vgg_int8, tmp_path / "fc_v99.tflite", "FULLY_CONNECTED", 99)
    report = check_edgetpu(path)
    assert [(t["op"], t["version"], t["limit"]) for t in report.too_new_ops] == [("FULLY_CONNECTED", 99, 9)]
    assert "is newer than the table" in report.too_new_ops[0]["reason"]


def test_parameters_over_the_cache_warn_but_do_not_fail(fer_vgg_int8, monkeypatch):
    monkeypatch.setattr(edgetpu_mod, "ON_CHIP_CACHE_BYTES", 100_000)
    report = check_edgetpu(fer_vgg_int8)
    assert report.parameter_bytes > 100_000
    assert report.compatible  # latency, not compatibility
    assert len(report.warnings) == 1 and "streams from host memory" in report.warnings[0]
    assert "WARNING: parameters" in report.summary()


def test_real_converter_output_with_a_post_2_5_op_fails(tmp_path):
    """Not a patched file: TF's own int8 conversion of GELU (an op that first appeared in TF Lite 2.9)."""
    import tensorflow as tf

    class Net(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, 8], tf.float32)])
        def __call__(self, x):
            return tf.nn.gelu(x)

    net = Net()
    conv = tf.lite.TFLiteConverter.from_concrete_functions([net.__call__.get_concrete_function()], net)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    rng = np.random.default_rng(0)
    conv.representative_dataset = lambda: ([rng.normal(size=(1, 8)).astype(np.float32)] for _ in range(8))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.int8
    path = tmp_path / "gelu.tflite"
    path.write_bytes(conv.convert())
    report = check_edgetpu(path)
    gelu = [t for t in report.too_new_ops if t["op"] == "GELU"]
    assert gelu and gelu[0]["limit"] == 0, report.too_new_ops
    assert "GELU version" in report.summary() and "limit: no version" in report.summary()
