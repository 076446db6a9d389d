"""MixUp / CutMix on a batch: returns mixed images and soft targets (any loss accepts them).

Kept rather than `timm.data.Mixup` or torchvision v2 `MixUp`/`CutMix`: torchvision one-hots
integer labels only and timm takes dense targets only as multi-label (FER+ gives soft vote
targets), timm needs an even batch (the last one may not be) and draws from the global
`np.random`, which is seeded once per run, so a resumed run would not replay it; this one takes
an explicit generator reseeded per step from (seed, step, rank) in `FERClassifier._reseed_step`.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def mix_batch(
    images: torch.Tensor,
    targets: torch.Tensor,
    n_classes: int,
    mixup_alpha: float = 0.0,
    cutmix_alpha: float = 0.0,
    prob: float = 1.0,
    switch_prob: float = 0.5,
    rng: np.random.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`targets` are int labels [B] or soft [B, C]. With probability `prob` one of MixUp
    (alpha > 0) or CutMix (alpha > 0, chosen with `switch_prob` when both are on) is applied
    with a shuffled partner; otherwise the batch passes unchanged (targets made soft)."""
    rng = rng or np.random.default_rng()
    soft = F.one_hot(targets.long(), n_classes).float() if targets.ndim == 1 else targets.float()
    use_mix, use_cut = mixup_alpha > 0, cutmix_alpha > 0
    if not (use_mix or use_cut) or rng.random() >= prob:
        return images, soft
    perm = torch.randperm(images.shape[0], device=images.device)
    if use_cut and (not use_mix or rng.random() < switch_prob):
        lam = float(rng.beta(cutmix_alpha, cutmix_alpha))
        h, w = images.shape[-2:]
        cut_h, cut_w = int(h * np.sqrt(1 - lam)), int(w * np.sqrt(1 - lam))
        cy, cx = int(rng.integers(h)), int(rng.integers(w))
        y0, y1 = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, h)
        x0, x1 = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, w)
        images = images.clone()
        images[..., y0:y1, x0:x1] = images[perm][..., y0:y1, x0:x1]
        lam = 1.0 - (y1 - y0) * (x1 - x0) / (h * w)  # the area actually pasted
    else:
        lam = float(rng.beta(mixup_alpha, mixup_alpha))
        images = lam * images + (1.0 - lam) * images[perm]
    return images, lam * soft + (1.0 - lam) * soft[perm]
