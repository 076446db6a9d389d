"""One soft-target formulation covers CE, label smoothing, focal and class weights:

    loss_i = - sum_c  w_c * a_c * (1 - p_ic) ** gamma * t_ic * log p_ic

with t the (optionally smoothed) target distribution, w class weights, a focal alpha.
Hard labels become one-hot t; gamma = 0, no weights and no smoothing gives exactly
`F.cross_entropy`. The named subclasses are the presets in conf/loss/.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ferops.losses.weights import class_weights


class ClassificationLoss(nn.Module):
    def __init__(
        self,
        label_smoothing: float = 0.0,
        gamma: float = 0.0,
        alpha: float | Sequence[float] | None = None,
        class_weighting: str = "none",
        weight_power: float = 1.0,
        weight_beta: float = 0.999,
    ):
        super().__init__()
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"loss.label_smoothing must be in [0, 1), got {label_smoothing}")
        if gamma < 0:
            raise ValueError(f"loss.gamma must be >= 0, got {gamma}")
        self.label_smoothing = label_smoothing
        self.gamma = gamma
        self.alpha = alpha
        self.class_weighting = class_weighting
        self.weight_power = weight_power
        self.weight_beta = weight_beta
        self.register_buffer("weight", None)

    def set_class_counts(self, counts) -> None:
        """Called once the training split is known; builds class weights (if any) and checks alpha."""
        w = class_weights(counts, self.class_weighting, self.weight_power, self.weight_beta)
        n = len(counts)
        if self.alpha is not None and not isinstance(self.alpha, (int, float)):
            if len(self.alpha) != n:
                raise ValueError(f"loss.alpha has {len(self.alpha)} values for {n} classes")
            alpha = torch.as_tensor(list(self.alpha), dtype=torch.float32)
            w = alpha.numpy() if w is None else w * alpha.numpy()
        self.weight = None if w is None else torch.as_tensor(w, dtype=torch.float32, device=self._device())

    def _device(self):
        return self.weight.device if self.weight is not None else torch.device("cpu")

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        n_classes = logits.shape[-1]
        if target.dtype in (torch.int64, torch.int32):
            target = F.one_hot(target.long(), n_classes).to(logits.dtype)
        if self.label_smoothing > 0:
            target = target * (1.0 - self.label_smoothing) + self.label_smoothing / n_classes
        log_p = F.log_softmax(logits.float(), dim=-1)
        per_class = -target * log_p
        if self.gamma > 0:
            per_class = per_class * (1.0 - log_p.exp()).pow(self.gamma)
        if isinstance(self.alpha, (int, float)):
            per_class = per_class * float(self.alpha)
        if self.weight is not None:
            per_class = per_class * self.weight.to(per_class.device)
        return per_class.sum(-1).mean()


class CrossEntropyLoss(ClassificationLoss):
    """Plain CE; `**weighting` = class_weighting / weight_power / weight_beta."""

    def __init__(self, **weighting):
        super().__init__(**weighting)


class LabelSmoothingLoss(ClassificationLoss):
    def __init__(self, smoothing: float = 0.1, **weighting):
        super().__init__(label_smoothing=smoothing, **weighting)


class FocalLoss(ClassificationLoss):
    """Lin et al. 2017; `alpha` is a scalar or one value per class."""

    def __init__(self, gamma: float = 2.0, alpha=None, **weighting):
        super().__init__(gamma=gamma, alpha=alpha, **weighting)


class SoftTargetCrossEntropy(ClassificationLoss):
    """Cross-entropy against a target distribution (FER+ votes, MixUp); hard labels work too."""
