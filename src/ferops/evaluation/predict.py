"""Class probabilities of a torch model on uint8 face arrays (torch is used here, in `external`
and in `explain` (Grad-CAM); the rest of `ferops.evaluation` is numpy + matplotlib)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from tqdm import tqdm


@torch.no_grad()
def predict_probs(model: nn.Module, images: np.ndarray, batch_size: int = 256, progress: bool = True) -> np.ndarray:
    """images uint8 [N, 48, 48] -> probs float32 [N, C]; `model` maps float [B,1,48,48] 0..255 to logits."""
    model.eval()
    out = []
    for start in tqdm(range(0, len(images), batch_size), desc="predict", disable=not progress, unit="batch"):
        x = torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size])).unsqueeze(1).float()
        out.append(model(x).softmax(-1).numpy())
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 0), np.float32)
