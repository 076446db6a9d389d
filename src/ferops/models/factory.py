"""Build a classifier from a backbone name: timm models or our own CNNs, plus `ClassifierHead`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ferops.models.cnn import FerResNet, FerVGG
from ferops.models.head import ClassifierHead

OWN_BACKBONES = {"fer_vgg": FerVGG, "fer_resnet": FerResNet}


class FERNet(nn.Module):
    """Backbone returning pooled features [B, F], then the head. Split so that staged
    fine-tuning and discriminative learning rates can address `backbone` and `head`."""

    def __init__(self, backbone: nn.Module, head: nn.Module, name: str):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.name = name

    def forward(self, x):
        return self.head(self.backbone(x))


def _timm_backbone(name: str, in_chans: int, pretrained: bool, pretrained_path: str | None, kwargs: dict) -> nn.Module:
    import timm

    if pretrained_path:
        path = Path(pretrained_path)
        if not path.is_file():
            raise FileNotFoundError(f"model.pretrained_path: no weights file at {path}")
        # timm loads a local file through the pretrained machinery, which also adapts the first
        # conv to in_chans and drops the ImageNet classifier; nothing is downloaded.
        return timm.create_model(
            name, pretrained=True, pretrained_cfg_overlay={"file": str(path)}, num_classes=0, in_chans=in_chans, **kwargs
        )
    return timm.create_model(name, pretrained=pretrained, num_classes=0, in_chans=in_chans, **kwargs)


def build_model(
    name: str,
    num_classes: int,
    in_chans: int = 1,
    pretrained: bool = False,
    pretrained_path: str | None = None,
    dropout: float = 0.0,
    head_hidden: int = 0,
    backbone_kwargs: dict[str, Any] | None = None,
) -> FERNet:
    """`name` is one of OWN_BACKBONES or any timm model name.

    `pretrained=True` downloads from the hub (needs a network, opt-in);
    `pretrained_path` loads a local weights file instead.
    """
    kwargs = dict(backbone_kwargs or {})
    if name in OWN_BACKBONES:
        if pretrained and not pretrained_path:
            raise ValueError(f"model {name!r} has no hub weights; use model.pretrained_path for a local checkpoint")
        backbone = OWN_BACKBONES[name](in_chans=in_chans, **kwargs)
        if pretrained_path:
            state = torch.load(pretrained_path, map_location="cpu", weights_only=True)
            state = state.get("state_dict", state)
            missing, _ = backbone.load_state_dict(state, strict=False)
            if len(missing) == len(backbone.state_dict()):
                raise ValueError(f"model.pretrained_path {pretrained_path}: no tensor matches backbone {name}")
    else:
        backbone = _timm_backbone(name, in_chans, pretrained, pretrained_path, kwargs)
    # timm's MobileNetV3 & co. have a conv head after pooling: head_hidden_size is what comes out.
    n_features = getattr(backbone, "head_hidden_size", None) or backbone.num_features
    head = ClassifierHead(n_features, num_classes, dropout=dropout, hidden=head_hidden)
    return FERNet(backbone, head, name)
