"""Data figures: class counts and shares per split, sample faces per class."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ferops.evaluation.figures import check_images, finish, new_figure, show_face

__all__ = ["plot_class_distribution", "plot_sample_grid"]

_SPLIT_ORDER = ("train", "val", "test")


def _ordered_splits(names: Sequence[str]) -> list[str]:
    known = [s for s in _SPLIT_ORDER if s in names]
    return known + [s for s in names if s not in known]


def plot_class_distribution(
    split_labels: Mapping[str, object],
    class_names: Sequence[str],
    title: str = "Class distribution",
    out_path: str | Path | None = None,
) -> Figure:
    """Grouped bars of counts per class per split (left) and each split's class shares (right).

    ``split_labels`` maps split name -> int labels ``[N]``.
    """
    n = len(class_names)
    if not split_labels:
        raise ValueError("split_labels is empty")
    splits = _ordered_splits(list(split_labels))
    counts = {}
    for s in splits:
        labels = np.asarray(split_labels[s]).astype(np.int64).ravel()
        if labels.size and (labels.min() < 0 or labels.max() >= n):
            raise ValueError(f"split {s!r} has labels outside [0, {n})")
        counts[s] = np.bincount(labels, minlength=n)

    fig = new_figure((max(9.0, 1.5 * n + 4.5), 4.8), layout="constrained")
    ax_count, ax_share = fig.subplots(1, 2, width_ratios=[3, 2])
    x = np.arange(n)
    width = 0.8 / len(splits)
    palette = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860"]
    annotate = len(splits) * n <= 30
    for k, s in enumerate(splits):
        offset = (k - (len(splits) - 1) / 2) * width
        c = counts[s]
        bars = ax_count.bar(
            x + offset,
            c,
            width=width,
            color=palette[k % len(palette)],
            edgecolor="0.25",
            linewidth=0.4,
            label=f"{s} (n={int(c.sum())})",
        )
        if annotate:
            ax_count.bar_label(bars, fontsize=6.5, padding=1, rotation=90)
        share = c / c.sum() if c.sum() else np.zeros(n)
        ax_share.bar(x + offset, share, width=width, color=palette[k % len(palette)], edgecolor="0.25", linewidth=0.4, label=s)
    rot, ha = (30, "right") if n > 5 else (0, "center")
    ax_count.set_xticks(x, labels=class_names, rotation=rot, ha=ha)
    ax_count.set_ylabel("Images")
    ax_count.set_xlabel("Class")
    ax_count.set_title("Counts per split")
    ax_count.margins(y=0.15)
    ax_count.legend(fontsize=8)
    ax_share.set_xticks(x, labels=class_names, rotation=rot, ha=ha)
    ax_share.set_ylabel("Share of split")
    ax_share.set_xlabel("Class")
    ax_share.set_title("Class share per split")
    ax_share.legend(fontsize=8)
    for ax in (ax_count, ax_share):
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    fig.suptitle(title, fontsize=13)
    return finish(fig, out_path)


def plot_sample_grid(
    images: object,
    labels: object,
    class_names: Sequence[str],
    n_per_class: int = 8,
    seed: int = 0,
    title: str = "Samples per class",
    out_path: str | Path | None = None,
) -> Figure:
    """One row per class with ``n_per_class`` randomly chosen faces (fixed ``seed``)."""
    imgs = check_images(images)
    labels = np.asarray(labels).astype(np.int64).ravel()
    if labels.shape[0] != imgs.shape[0]:
        raise ValueError(f"{imgs.shape[0]} images but {labels.shape[0]} labels")
    n = len(class_names)
    rng = np.random.default_rng(seed)
    tile = 0.95
    fig = new_figure((tile * n_per_class + 1.6, tile * n + 0.7))
    grid = fig.add_gridspec(
        n,
        n_per_class,
        left=1.5 / (tile * n_per_class + 1.6),
        right=0.99,
        top=1 - 0.55 / (tile * n + 0.7),
        bottom=0.01,
        wspace=0.06,
        hspace=0.06,
    )
    for c in range(n):
        idx = np.flatnonzero(labels == c)
        chosen = rng.choice(idx, size=min(n_per_class, idx.size), replace=False) if idx.size else idx
        for j in range(n_per_class):
            ax = fig.add_subplot(grid[c, j])
            if j < chosen.size:
                show_face(ax, imgs[chosen[j]])
            else:
                ax.axis("off")
            if j == 0:
                ax.set_ylabel(f"{class_names[c]}\n(n={idx.size})", rotation=0, ha="right", va="center", fontsize=9, labelpad=6)
                if not chosen.size:  # axis is off: label it with text instead
                    ax.text(-0.08, 0.5, f"{class_names[c]}\n(n=0)", transform=ax.transAxes, ha="right", va="center", fontsize=9)
    fig.suptitle(title, fontsize=12)
    return finish(fig, out_path)
