"""Per-class loss weights from training-set class counts."""

from __future__ import annotations

import numpy as np


def class_weights(counts, mode: str = "none", power: float = 1.0, beta: float = 0.999) -> np.ndarray | None:
    """Weights normalised to mean 1 (so the loss scale, and the learning rate, stay comparable).

    - `none`: no weights.
    - `inverse`: w_c ∝ (1 / n_c) ** power  (power 0.5 = the common square-root damping).
    - `effective`: w_c ∝ (1 - beta) / (1 - beta ** n_c)  (Cui et al. 2019, "effective number of samples").
    """
    if mode == "none":
        return None
    counts = np.asarray(counts, dtype=np.float64)
    if (counts <= 0).any():
        raise ValueError(f"class weights: every class needs training samples, got counts {counts.tolist()}")
    if mode == "inverse":
        w = (1.0 / counts) ** power
    elif mode == "effective":
        if not 0.0 < beta < 1.0:
            raise ValueError(f"class weights: beta must be in (0, 1), got {beta}")
        w = (1.0 - beta) / (1.0 - beta**counts)
    else:
        raise ValueError(f"class weights: unknown mode {mode!r} (none | inverse | effective)")
    return (w / w.mean()).astype(np.float32)
