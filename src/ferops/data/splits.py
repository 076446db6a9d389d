"""Train/val/test splits, the documented fallbacks for missing splits, and stratified subsets.

Strategies:

- ``official``: rows keep the usage their source gave them (FER2013 Training/PublicTest/PrivateTest).
- ``stratified``: all rows are re-split by label with ``fractions`` (train, val, test) and ``seed``.

Missing splits never crash later in training; they get a `SplitWarning` (also logged) and this behaviour:

(a) no test rows (e.g. a FER2013 CSV without PrivateTest): the test split IS the val split, so "test"
    metrics are val (PublicTest) metrics; ``SplitResult.test_is_val`` is True.
(b) no val rows (e.g. a folder with only train/ and test/): a stratified ``val_fraction`` (default 0.1,
    seeded) of train becomes val.
(c) no train rows: `ValueError` at once.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ferops.data.constants import SPLITS
from ferops.data.sources import RawData

log = logging.getLogger(__name__)

STRATEGIES = ("official", "stratified")


class SplitWarning(UserWarning):
    """A split was missing and a documented fallback was applied."""


@dataclass
class SplitResult:
    indices: dict[str, np.ndarray]  # split -> row indices into the RawData
    notes: list[str] = field(default_factory=list)  # fallbacks applied, for the data report
    test_is_val: bool = False


def _warn(msg: str, notes: list[str]) -> None:
    log.warning(msg)
    warnings.warn(msg, SplitWarning, stacklevel=3)
    notes.append(msg)


def _round_bounds(fractions: Sequence[float], n: int) -> np.ndarray:
    cum = np.cumsum(np.asarray(fractions, float) / float(np.sum(fractions)))
    return np.floor(cum * n + 0.5).astype(np.int64)


def stratified_split(labels: np.ndarray, fractions: Sequence[float], seed: int) -> list[np.ndarray]:
    """Split row indices into ``len(fractions)`` sorted parts, class by class (seeded)."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in fractions]
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        lo = 0
        for k, hi in enumerate(_round_bounds(fractions, len(idx))):
            parts[k].append(idx[lo:hi])
            lo = hi
    return [np.sort(np.concatenate(p)) if p else np.zeros(0, np.int64) for p in parts]


def assign_splits(
    raw: RawData,
    strategy: str = "official",
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 42,
    val_fraction: float = 0.1,
) -> SplitResult:
    """Row indices of train/val/test for ``raw`` under ``strategy``, with the module's fallbacks."""
    notes: list[str] = []
    if strategy == "official":
        indices = {s: np.flatnonzero(raw.usage == s) for s in SPLITS}
    elif strategy == "stratified":
        fractions = [float(f) for f in fractions]
        if len(fractions) != 3 or min(fractions) < 0 or fractions[0] <= 0:
            raise ValueError(f"split.fractions must be [train, val, test] with train > 0, got {fractions}")
        indices = dict(zip(SPLITS, stratified_split(raw.labels, fractions, seed)))
    else:
        raise ValueError(f"split.strategy must be one of {STRATEGIES}, got {strategy!r}")

    if len(indices["train"]) == 0:
        counts = {s: len(i) for s, i in indices.items()}
        raise ValueError(
            f"{raw.name}: no train rows (rows per split: {counts}); "
            "check the source's usage column/folders or use split.strategy=stratified"
        )
    if len(indices["val"]) == 0:
        if not 0 < val_fraction < 1:
            raise ValueError(f"{raw.name}: no val rows and split.val_fraction={val_fraction} cannot carve them out")
        train = indices["train"]
        keep, carved = stratified_split(raw.labels[train], [1 - val_fraction, val_fraction], seed)
        if len(carved) == 0 and len(train) >= 2:  # classes too small to stratify: carve at random
            perm = np.random.default_rng(seed).permutation(len(train))
            n_val = max(1, int(round(val_fraction * len(train))))
            keep, carved = np.sort(perm[n_val:]), np.sort(perm[:n_val])
        indices["train"], indices["val"] = train[keep], train[carved]
        _warn(
            f"{raw.name}: no val rows; carved a stratified {val_fraction:.0%} of train as val "
            f"(seed {seed}): {len(indices['val'])} rows",
            notes,
        )
        if len(indices["val"]) == 0:
            raise ValueError(f"{raw.name}: train has too few rows ({len(train)}) to carve a val split")
    test_is_val = False
    if len(indices["test"]) == 0:
        indices["test"] = indices["val"]
        test_is_val = True
        _warn(
            f"{raw.name}: no test rows; the test split uses the val split, so test metrics are val metrics "
            "(for FER2013 without PrivateTest: PublicTest metrics)",
            notes,
        )
    return SplitResult(indices=indices, notes=notes, test_is_val=test_is_val)


def calibration_indices(labels: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """``n`` row indices stratified by class (proportional, every present class at least once when n allows)."""
    labels = np.asarray(labels)
    if n >= len(labels):
        return np.arange(len(labels))
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts / counts.sum() * n
    quota = np.floor(exact).astype(np.int64)
    if n >= len(classes):
        quota = np.maximum(quota, 1)
    # hand out what is left by largest remainder, take back any excess from the largest quotas
    order = np.argsort(-(exact - np.floor(exact)), kind="stable")
    k = 0
    while quota.sum() < n:
        c = order[k % len(order)]
        if quota[c] < counts[c]:
            quota[c] += 1
        k += 1
    while quota.sum() > n:
        quota[np.argmax(quota)] -= 1
    quota = np.minimum(quota, counts)
    rng = np.random.default_rng(seed)
    picked = [rng.choice(np.flatnonzero(labels == c), size=q, replace=False) for c, q in zip(classes, quota)]
    return np.sort(np.concatenate(picked))


def calibration_subset(images: np.ndarray, labels: np.ndarray, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A class-stratified subset of ``n`` images (e.g. int8 calibration data) -> (images, labels)."""
    idx = calibration_indices(labels, n, seed)
    return images[idx], np.asarray(labels)[idx]
