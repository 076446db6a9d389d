"""Our own from-scratch CNNs for native 48x48 grayscale faces.

Both are built from CONV / BN / RELU / MAXPOOL / ADD / MEAN only, so their int8 export maps
fully onto the EdgeTPU. Each returns pooled features; the classifier head lives in `FERNet`.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn


def conv_bn_relu(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class FerVGG(nn.Module):
    """VGG-style stages of 3x3 conv-BN-ReLU, each closed by 2x2 max-pooling, then global average pooling.

    With the defaults a 48x48 input ends at 3x3x256 before pooling. `convs_per_stage` is one
    number or one per stage (the 48x48 stage dominates the cost, so [1, 2, 2, 2] is a cheap deepening).
    """

    def __init__(self, in_chans: int = 1, widths: Sequence[int] = (32, 64, 128, 256), convs_per_stage: int | Sequence[int] = 2):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = in_chans
        per_stage = [convs_per_stage] * len(widths) if isinstance(convs_per_stage, int) else list(convs_per_stage)
        if len(per_stage) != len(widths):
            raise ValueError(f"convs_per_stage {convs_per_stage} must have one entry per width {list(widths)}")
        for width, n_convs in zip(widths, per_stage):
            for _ in range(n_convs):
                layers.append(conv_bn_relu(c_in, width))
                c_in = width
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.num_features = c_in

    def forward(self, x):
        return self.pool(self.features(x)).flatten(1)


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            conv_bn_relu(c_in, c_out, stride),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
        )
        self.shortcut = (
            nn.Identity()
            if stride == 1 and c_in == c_out
            else nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.act(self.body(x) + self.shortcut(x))


class FerResNet(nn.Module):
    """ResNet variant for 48x48: a stride-1 stem keeps full resolution in the first stage
    (ImageNet ResNets would shrink 48x48 to 12x12 before the first block)."""

    def __init__(self, in_chans: int = 1, widths: Sequence[int] = (32, 64, 128, 256), blocks: Sequence[int] = (1, 1, 1, 1)):
        super().__init__()
        self.stem = conv_bn_relu(in_chans, widths[0])
        stages: list[nn.Module] = []
        c_in = widths[0]
        for i, (width, n) in enumerate(zip(widths, blocks, strict=True)):
            for j in range(n):
                stages.append(BasicBlock(c_in, width, stride=2 if (i > 0 and j == 0) else 1))
                c_in = width
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.num_features = c_in

    def forward(self, x):
        return self.pool(self.stages(self.stem(x))).flatten(1)
