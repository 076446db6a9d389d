"""ONNX export: checker, static batch-1 contract, parity with PyTorch through ONNX Runtime."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from ferops.export.chain import parity
from ferops.export.onnx import check_onnx, export_onnx, is_static, onnx_export_info, onnx_logits, torch_logits


def test_exported_onnx_passes_checker_and_has_static_batch_one(exported):
    path = exported["out_dir"] / "exports" / "model.onnx"
    proto = check_onnx(path, image_size=48, opset=17)  # raises on any violation
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    dims = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 1, 48, 48]
    assert [d.dim_value for d in proto.graph.output[0].type.tensor_type.shape.dim] == [1, 3]
    assert proto.graph.input[0].name == "image" and proto.graph.output[0].name == "logits"


def test_onnx_runtime_matches_pytorch(exported):
    data, model = exported["data"], exported["model"]
    path = exported["out_dir"] / "exports" / "model.onnx"
    p = parity(torch_logits(model, data["eval_x"]), onnx_logits(path, data["eval_x"]))
    assert p["top1_agreement"] == 1.0
    assert p["max_abs_logit_diff"] < 1e-4
    m = exported["report"]["metrics"]["onnx"]
    assert m["max_abs_logit_diff"] < 1e-4 and m["top1_agreement"] == 1.0


def test_parity_detects_a_different_model(exported, tiny_net_cls):
    """The parity numbers can fail: a model with other weights disagrees with the exported ONNX."""
    data = exported["data"]
    torch.manual_seed(123)
    other = tiny_net_cls().eval()  # fresh random weights
    p = parity(torch_logits(other, data["eval_x"]), onnx_logits(exported["out_dir"] / "exports" / "model.onnx", data["eval_x"]))
    assert p["max_abs_logit_diff"] > 1e-2


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_check_onnx_rejects_dynamic_batch(tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval()
    path = tmp_path / "dyn.onnx"
    with torch.no_grad():
        torch.onnx.export(
            model,
            (torch.zeros(1, 1, 48, 48),),
            str(path),
            opset_version=17,
            dynamo=False,
            input_names=["image"],
            output_names=["logits"],
            dynamic_axes={"image": {0: "batch"}},
        )
    with pytest.raises(ValueError, match="static"):
        check_onnx(path)


def test_export_onnx_keeps_training_mode_and_opset(tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    model.train()
    path = export_onnx(model, tmp_path / "m.onnx", opset=13)
    assert model.training
    assert check_onnx(path, opset=13).opset_import[0].version == 13
    x = np.random.default_rng(0).integers(0, 256, (4, 48, 48), dtype=np.uint8)
    assert onnx_logits(path, x).shape == (4, 2)


def test_simplify_removes_expand_and_tile_from_repeat(tmp_path, tiny_net_cls):
    """Tensor.repeat exports as Expand(ones) + Tile: simplify_onnx leaves one Concat, same outputs."""
    torch.manual_seed(0)
    model = tiny_net_cls(in_chans=3, input_size=64).eval()
    raw = export_onnx(model, tmp_path / "raw.onnx", simplify=False)
    raw_ops = {n.op_type for n in onnx.load(str(raw)).graph.node}
    assert {"Expand", "Tile"} <= raw_ops
    simple = export_onnx(model, tmp_path / "simple.onnx")
    ops = [n.op_type for n in onnx.load(str(simple)).graph.node]
    assert "Expand" not in ops and "Tile" not in ops and "Shape" not in ops
    assert ops.count("Concat") == 1 and "Resize" in ops
    x = np.random.default_rng(0).integers(0, 256, (6, 48, 48), dtype=np.uint8)
    np.testing.assert_allclose(onnx_logits(simple, x), torch_logits(model, x), atol=1e-4)
    np.testing.assert_allclose(onnx_logits(simple, x), onnx_logits(raw, x), atol=1e-5)


class _SamePadNet(nn.Module):
    """TF-'same' padding computed from the input size + flatten: the TorchScript exporter leaves shape
    arithmetic (ConstantOfShape/Slice/Reshape) and a symbolic batch dimension."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, stride=2)
        self.fc = nn.Linear(4 * 24 * 24, 3)

    def forward(self, x):
        ih = x.shape[-1]
        pad = max((-(-ih // 2) - 1) * 2 + 3 - ih, 0)
        x = torch.nn.functional.pad(x / 255.0, [pad // 2, pad - pad // 2, pad // 2, pad - pad // 2])
        return self.fc(self.conv(x).flatten(1))


def test_auto_exporter_falls_back_to_dynamo_for_dynamic_shape_graphs(tmp_path):
    torch.manual_seed(0)
    model = _SamePadNet().eval()
    with pytest.raises(ValueError, match="expected \\[1, C\\]"):
        export_onnx(model, tmp_path / "ts.onnx", exporter="torchscript")
    path = export_onnx(model, tmp_path / "auto.onnx")
    assert onnx_export_info(path) == {"exporter": "dynamo", "opset": "18"}
    proto = check_onnx(path, opset=18)
    assert is_static(proto)
    x = np.random.default_rng(0).integers(0, 256, (3, 48, 48), dtype=np.uint8)
    np.testing.assert_allclose(onnx_logits(path, x), torch_logits(model, x), atol=1e-4)


def test_auto_exporter_keeps_torchscript_for_static_graphs(exported):
    info = onnx_export_info(exported["out_dir"] / "exports" / "model.onnx")
    assert info == {"exporter": "torchscript", "opset": "17"}
    assert exported["report"]["converters"]["onnx_exporter"] == "torchscript"
