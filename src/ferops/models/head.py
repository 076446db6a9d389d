"""Classifier head shared by every backbone."""

from __future__ import annotations

from torch import nn


class ClassifierHead(nn.Module):
    """Dropout -> (optional hidden Linear+ReLU) -> Linear.

    ReLU (not GELU/Hardswish) so the head maps to the EdgeTPU.
    """

    def __init__(self, in_features: int, num_classes: int, dropout: float = 0.0, hidden: int = 0):
        super().__init__()
        layers: list[nn.Module] = [nn.Dropout(dropout)] if dropout > 0 else []
        if hidden > 0:
            layers += [nn.Linear(in_features, hidden), nn.ReLU(inplace=True)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            in_features = hidden
        layers.append(nn.Linear(in_features, num_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x)
