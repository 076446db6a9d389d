import pytest
import torch

from ferops.models import build_model
from ferops.models.cnn import FerResNet


@pytest.mark.parametrize("name", ["fer_vgg", "fer_resnet", "tf_mobilenetv3_small_minimal_100", "resnet18"])
@pytest.mark.parametrize("in_chans", [1, 3])
def test_build_model_shapes(name, in_chans):
    net = build_model(name, num_classes=7, in_chans=in_chans, dropout=0.2, head_hidden=16)
    out = net.eval()(torch.rand(2, in_chans, 48, 48))
    assert out.shape == (2, 7)
    assert set(dict(net.named_children())) == {"backbone", "head"}


def test_fer_resnet_keeps_48x48_in_first_stage():
    net = FerResNet(widths=(8, 16), blocks=(1, 1))
    x = net.stem(torch.rand(1, 1, 48, 48))
    assert net.stages[0](x).shape[-2:] == (48, 48)


def test_pretrained_path_loads_local_weights(tmp_path):
    src = build_model("fer_vgg", num_classes=7)
    path = tmp_path / "backbone.pt"
    torch.save(src.backbone.state_dict(), path)
    dst = build_model("fer_vgg", num_classes=7, pretrained_path=str(path))
    for a, b in zip(src.backbone.state_dict().values(), dst.backbone.state_dict().values()):
        assert torch.equal(a, b)


def test_timm_pretrained_path_loads_local_weights(tmp_path):
    import timm

    src = timm.create_model("resnet18", num_classes=0, in_chans=1)
    path = tmp_path / "resnet18.pth"
    torch.save(src.state_dict(), path)
    dst = build_model("resnet18", num_classes=7, in_chans=1, pretrained_path=str(path))
    assert torch.equal(src.conv1.weight, dst.backbone.conv1.weight)


def test_missing_pretrained_path_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="pretrained_path"):
        build_model("resnet18", num_classes=7, pretrained_path=str(tmp_path / "nope.pth"))
