"""Train/val/test splits, the rule that the reported split is never used for a choice, and
stratified subsets.

Strategies:

- ``official``: rows keep the usage their source gave them (FER2013 Training/PublicTest/PrivateTest).
- ``stratified``: all rows are re-split by label with ``fractions`` (train, val, test) and ``seed``.

The rule: what a run reports as ``test`` is never used for any choice (early stopping, checkpoint
selection, Optuna, export gates, promotion all read ``val``). So when a source lacks a split:

(a) no test rows (e.g. a FER2013 CSV without PrivateTest): the source's val rows (PublicTest) become
    test, and val is carved from train: a stratified, seeded ``val_fraction`` (default 10 %).
(b) no val rows (e.g. a folder with only train/ and test/): val is carved from train the same way.
(c) only train rows: val and test are both carved from train.
(d) no train rows: `ValueError` at once.

Every carve (and ``stratified``) keeps groups of byte-identical images together (``groups``, one
key per row, e.g. an image hash), so no image straddles train and val: FER2013 has hundreds of
duplicate groups inside Training. Each fallback is a `SplitWarning` (also logged) and a note.
``SplitResult.sources`` names where each split came from (``source:val`` = the source's own val
rows; ``carved:train(...)`` = carved from its train rows), for the split record of the run.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ferops.data.constants import SPLITS
from ferops.data.raw import RawData

log = logging.getLogger(__name__)

STRATEGIES = ("official", "stratified")


class SplitWarning(UserWarning):
    """A split was missing and a documented fallback was applied."""


@dataclass
class SplitResult:
    indices: dict[str, np.ndarray]  # split -> row indices into the RawData
    notes: list[str] = field(default_factory=list)  # fallbacks applied, for the data report
    sources: dict[str, str] = field(default_factory=dict)  # split -> where its rows came from


def _warn(msg: str, notes: list[str]) -> None:
    log.warning(msg)
    warnings.warn(msg, SplitWarning, stacklevel=3)
    notes.append(msg)


def _round_bounds(fractions: Sequence[float], n: int) -> np.ndarray:
    cum = np.cumsum(np.asarray(fractions, float) / float(np.sum(fractions)))
    return np.floor(cum * n + 0.5).astype(np.int64)


def stratified_split(
    labels: np.ndarray, fractions: Sequence[float], seed: int, groups: np.ndarray | None = None
) -> list[np.ndarray]:
    """Split row indices into ``len(fractions)`` sorted parts, class by class (seeded).

    With ``groups`` (one key per row) rows sharing a key go to the same part, stratified by the
    label of each group's first row; parts then match ``fractions`` up to one group per class."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    if groups is None:
        group_of = np.arange(len(labels))
    else:
        _, group_of = np.unique(np.asarray(groups), return_inverse=True)
    first = np.full(group_of.max() + 1 if len(labels) else 0, len(labels), np.int64)
    np.minimum.at(first, group_of, np.arange(len(labels)))  # first row of each group
    group_label = labels[first]
    group_size = np.bincount(group_of, minlength=len(first))
    parts: list[list[np.ndarray]] = [[] for _ in fractions]
    for c in np.unique(group_label):
        gids = rng.permutation(np.flatnonzero(group_label == c))
        # a group goes to the part its first row falls in, by cumulative row count
        starts = np.concatenate([[0], np.cumsum(group_size[gids])[:-1]])
        part_of = np.searchsorted(_round_bounds(fractions, int(group_size[gids].sum())), starts, side="right")
        for k in range(len(fractions)):
            parts[k].append(gids[part_of == k])
    out = []
    for p in parts:
        gids = np.concatenate(p) if p else np.zeros(0, np.int64)
        out.append(np.sort(np.flatnonzero(np.isin(group_of, gids))))
    return out


def _carve(
    raw: RawData, rows: np.ndarray, fraction: float, seed: int, groups: np.ndarray | None, what: str
) -> tuple[np.ndarray, np.ndarray]:
    """(kept, carved) row indices: a stratified, group-aware ``fraction`` of ``rows``."""
    if not 0 < fraction < 1:
        raise ValueError(f"{raw.name}: no {what} rows and split.val_fraction={fraction} cannot carve them out")
    g = None if groups is None else groups[rows]
    keep, carved = stratified_split(raw.labels[rows], [1 - fraction, fraction], seed, g)
    if len(carved) == 0 and len(rows) >= 2:  # classes too small to stratify: carve whole groups at random
        keys = np.arange(len(rows)) if g is None else np.unique(g, return_inverse=True)[1]
        order = np.random.default_rng(seed).permutation(keys.max() + 1)
        n_groups = max(1, round(fraction * len(order)))
        taken = np.isin(keys, order[:n_groups])
        keep, carved = np.flatnonzero(~taken), np.flatnonzero(taken)
    if len(carved) == 0 or len(keep) == 0:
        raise ValueError(f"{raw.name}: train has too few rows ({len(rows)}) to carve a {what} split")
    return rows[keep], rows[carved]


def assign_splits(
    raw: RawData,
    strategy: str = "official",
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 42,
    val_fraction: float = 0.1,
    groups: np.ndarray | None = None,
) -> SplitResult:
    """Row indices of train/val/test for ``raw`` under ``strategy``, with the module's fallbacks.

    ``groups``: one key per row (e.g. an image hash); rows sharing a key never straddle the
    splits this function draws (the source's own splits are kept as given)."""
    notes: list[str] = []
    if strategy == "official":
        indices = {s: np.flatnonzero(raw.usage == s) for s in SPLITS}
        sources = {s: f"source:{s}" for s in SPLITS}
    elif strategy == "stratified":
        fractions = [float(f) for f in fractions]
        if len(fractions) != 3 or min(fractions) < 0 or fractions[0] <= 0:
            raise ValueError(f"split.fractions must be [train, val, test] with train > 0, got {fractions}")
        indices = dict(zip(SPLITS, stratified_split(raw.labels, fractions, seed, groups)))
        sources = {s: f"stratified:all({fractions[k]:g},seed={seed})" for k, s in enumerate(SPLITS)}
    else:
        raise ValueError(f"split.strategy must be one of {STRATEGIES}, got {strategy!r}")

    if len(indices["train"]) == 0:
        counts = {s: len(i) for s, i in indices.items()}
        raise ValueError(
            f"{raw.name}: no train rows (rows per split: {counts}); "
            "check the source's usage column/folders or use split.strategy=stratified"
        )
    carved_from = f"carved:train({val_fraction:g},seed={seed})"
    if len(indices["test"]) == 0:
        if len(indices["val"]):
            # Two splits: the second one is reported (test); val for every choice comes from train.
            indices["test"], sources["test"] = indices["val"], sources["val"]
            indices["val"] = np.zeros(0, np.int64)
            _warn(
                f"{raw.name}: no test rows; the source's val rows are the test split "
                "(for FER2013 without PrivateTest: PublicTest), and val is carved from train",
                notes,
            )
        else:
            indices["train"], indices["test"] = _carve(raw, indices["train"], val_fraction, seed + 1, groups, "test")
            sources["test"] = f"carved:train({val_fraction:g},seed={seed + 1})"
            _warn(f"{raw.name}: no val or test rows; carved a {val_fraction:.0%} test split from train", notes)
    if len(indices["val"]) == 0:
        indices["train"], indices["val"] = _carve(raw, indices["train"], val_fraction, seed, groups, "val")
        sources["val"] = carved_from
        _warn(
            f"{raw.name}: carved a stratified {val_fraction:.0%} of train as val (seed {seed}, "
            f"byte-identical images kept on one side): {len(indices['val'])} rows",
            notes,
        )
    return SplitResult(indices=indices, notes=notes, sources=sources)


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
