"""Training losses. Every loss takes logits and either hard labels int64 [B] or soft targets
float [B, C] (MixUp/CutMix, FER+ vote distributions), so any loss can be combined with any
batch augmentation. Validation always uses plain cross-entropy (in the LightningModule)."""

from ferops.losses.classification import (
    ClassificationLoss,
    CrossEntropyLoss,
    FocalLoss,
    LabelSmoothingLoss,
    SoftTargetCrossEntropy,
)
from ferops.losses.weights import class_weights

__all__ = [
    "ClassificationLoss",
    "CrossEntropyLoss",
    "FocalLoss",
    "LabelSmoothingLoss",
    "SoftTargetCrossEntropy",
    "class_weights",
]
