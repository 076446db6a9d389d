"""Seeds derived from the run's ``seed``: one place for how a run's randomness is keyed.

`lightning.seed_everything(seed)` at the start of ``train()`` fixes weight init and everything before
the first step. From then on each training step's random draws (augmentation, MixUp/CutMix, dropout)
come from a seed keyed by (run seed, global step, rank), so a run resumed from any checkpoint replays
the rest exactly as the uninterrupted run does, whatever else consumed the global RNG in between
(Lightning's own loader and restore code does).
"""

from __future__ import annotations

import numpy as np


def derived_seed(seed: int, *keys: int) -> int:
    """A 63-bit seed for ``(seed, *keys)`` (numpy's SeedSequence mixing: nearby keys are unrelated)."""
    state = np.random.SeedSequence([int(seed), *map(int, keys)]).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))
