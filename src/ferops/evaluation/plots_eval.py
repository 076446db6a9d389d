"""Evaluation figures: confusion matrix, per-class recall, reliability diagram (alone or before/after
temperature scaling), confident mistakes, the unknown-threshold analysis."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.image import AxesImage

from ferops.evaluation.figures import check_images, finish, new_figure, show_face, text_figure
from ferops.evaluation.metrics import ReliabilityBins

__all__ = [
    "plot_confident_mistakes",
    "plot_confusion_matrix",
    "plot_per_class_accuracy",
    "plot_reliability_comparison",
    "plot_reliability_diagram",
    "plot_threshold_analysis",
]


# ----------------------------------------------------------------------------- confusion matrix


def _draw_matrix(
    ax,
    matrix: np.ndarray,
    class_names: Sequence[str],
    fmt: str,
    title: str,
    vmax: float,
    blank_rows: np.ndarray | None = None,
) -> AxesImage:
    """Heat map with a value in every cell; rows flagged in ``blank_rows`` show "–" (undefined)."""
    n = matrix.shape[0]
    im = ax.imshow(matrix, cmap="Blues", vmin=0, vmax=vmax if vmax > 0 else 1, interpolation="nearest")
    ax.set_xticks(range(n), labels=class_names, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(n), labels=class_names)
    ax.set_xlabel("Predicted class")
    ax.set_ylabel("True class")
    ax.set_title(title)
    ax.set_xticks(np.arange(n + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(n + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="white", linewidth=1.0)
    ax.tick_params(which="minor", length=0)
    fontsize = 9 if n <= 10 else 7
    threshold = 0.55 * (vmax if vmax > 0 else 1)
    for i in range(n):
        for j in range(n):
            value = matrix[i, j]
            blank = blank_rows is not None and bool(blank_rows[i])
            ax.text(
                j,
                i,
                "–" if blank else format(value, fmt),
                ha="center",
                va="center",
                fontsize=fontsize,
                color="white" if value > threshold else "0.15",
            )
    return im


def plot_confusion_matrix(
    cm: np.ndarray,
    class_names: Sequence[str],
    title: str = "Confusion matrix",
    out_path: str | Path | None = None,
) -> Figure:
    """Counts (left) and row-normalised recall (right) of a ``[true, predicted]`` matrix.

    Rows of classes without samples read "–" in the normalised panel (their recall is undefined).
    """
    cm = np.asarray(cm)
    n = cm.shape[0]
    if cm.shape != (n, n) or len(class_names) != n:
        raise ValueError(f"confusion matrix {cm.shape} does not match {len(class_names)} class names")
    support = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, support, out=np.zeros(cm.shape, dtype=np.float64), where=support > 0)
    side = max(4.2, 0.62 * n + 2.2)
    fig = new_figure((2 * side + 1.2, side), layout="constrained")
    ax_counts, ax_norm = fig.subplots(1, 2)
    im = _draw_matrix(ax_counts, cm.astype(np.int64), class_names, "d", "Counts", float(cm.max()))
    fig.colorbar(im, ax=ax_counts, shrink=0.8, label="samples")
    im = _draw_matrix(ax_norm, norm, class_names, ".2f", "Normalised by true class (recall)", 1.0, blank_rows=support[:, 0] == 0)
    fig.colorbar(im, ax=ax_norm, shrink=0.8, label="fraction of true class")
    total = int(cm.sum())
    acc = np.trace(cm) / total if total else 0.0
    fig.suptitle(f"{title}  (n={total}, accuracy={acc:.3f})", fontsize=13)
    return finish(fig, out_path)


# ----------------------------------------------------------------------------- per-class bars


def plot_per_class_accuracy(
    cm: np.ndarray,
    class_names: Sequence[str],
    title: str = "Per-class accuracy (recall)",
    out_path: str | Path | None = None,
) -> Figure:
    """Recall per class (the accuracy on that class's samples), with support, overall and balanced accuracy."""
    cm = np.asarray(cm)
    n = cm.shape[0]
    if cm.shape != (n, n) or len(class_names) != n:
        raise ValueError(f"confusion matrix {cm.shape} does not match {len(class_names)} class names")
    support = cm.sum(axis=1)
    recall = np.divide(np.diag(cm), support, out=np.zeros(n, dtype=np.float64), where=support > 0)
    total = int(cm.sum())
    overall = np.trace(cm) / total if total else 0.0
    balanced = float(recall[support > 0].mean()) if (support > 0).any() else 0.0

    fig = new_figure((max(6.0, 0.9 * n + 2.5), 4.6), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(n)
    colors = ["#4C72B0" if s > 0 else "0.8" for s in support]
    bars = ax.bar(x, recall, color=colors, edgecolor="0.25", linewidth=0.6, width=0.7)
    for bar, r, s in zip(bars, recall, support, strict=True):
        cx = bar.get_x() + bar.get_width() / 2
        if s == 0:
            ax.text(cx, 0.02, "no\nsamples", ha="center", va="bottom", fontsize=8, color="0.3")
        elif r >= 0.12:  # value inside the bar top, support at its foot: clear of the reference lines
            ax.text(cx, r - 0.015, f"{r:.2f}", ha="center", va="top", fontsize=9, color="white", fontweight="bold")
            ax.text(cx, 0.015, f"n={s}", ha="center", va="bottom", fontsize=8, color="white")
        else:
            ax.text(cx, r + 0.015, f"{r:.2f}\nn={s}", ha="center", va="bottom", fontsize=8)
    ax.axhline(overall, color="#C44E52", linestyle="--", linewidth=1.2, label=f"accuracy {overall:.3f}")
    ax.axhline(balanced, color="#55A868", linestyle=":", linewidth=1.5, label=f"balanced accuracy {balanced:.3f}")
    ax.set_xticks(x, labels=class_names, rotation=30 if n > 5 else 0, ha="right" if n > 5 else "center")
    ax.set_ylim(0, 1.12)
    ax.set_xlabel("True class")
    ax.set_ylabel("Recall (fraction correctly classified)")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    ax.legend(loc="upper right", fontsize=8, framealpha=0.9)
    return finish(fig, out_path)


# ----------------------------------------------------------------------------- reliability


def plot_reliability_diagram(
    bins: ReliabilityBins,
    title: str = "Reliability diagram",
    out_path: str | Path | None = None,
) -> Figure:
    """Accuracy vs confidence per bin (bars), the gap to the diagonal (hatched) and a count histogram below."""
    fig = new_figure((5.6, 6.2), layout="constrained")
    ax, ax_hist = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    _draw_reliability(ax, ax_hist, bins, title)
    return finish(fig, out_path)


def plot_reliability_comparison(
    panels: Sequence[tuple[str, ReliabilityBins]],
    title: str = "Reliability diagram",
    out_path: str | Path | None = None,
) -> Figure:
    """Reliability diagrams side by side, e.g. ``[("before (T = 1)", bins), ("after (T = 1.6)", bins)]``."""
    if not panels:
        raise ValueError("no reliability panels")
    fig = new_figure((5.2 * len(panels), 6.2), layout="constrained")
    axes = fig.subplots(2, len(panels), sharex=True, height_ratios=[3, 1], squeeze=False)
    for k, (name, bins) in enumerate(panels):
        _draw_reliability(axes[0, k], axes[1, k], bins, name)
    fig.suptitle(title, fontsize=13)
    return finish(fig, out_path)


def _draw_reliability(ax, ax_hist, bins: ReliabilityBins, title: str) -> None:
    width = bins.upper - bins.lower
    centers = (bins.lower + bins.upper) / 2
    filled = bins.count > 0
    acc = np.where(filled, bins.accuracy, 0.0)
    conf = np.where(filled, bins.confidence, 0.0)

    ax.bar(
        bins.lower[filled],
        acc[filled],
        width=width[filled],
        align="edge",
        color="#4C72B0",
        edgecolor="0.2",
        linewidth=0.6,
        label="accuracy",
    )
    gap_bottom = np.minimum(acc, conf)[filled]
    gap_height = np.abs(conf - acc)[filled]
    ax.bar(
        bins.lower[filled],
        gap_height,
        bottom=gap_bottom,
        width=width[filled],
        align="edge",
        facecolor="none",
        edgecolor="#C44E52",
        hatch="///",
        linewidth=0.8,
        label="gap to confidence",
    )
    ax.plot([0, 1], [0, 1], linestyle="--", color="0.35", linewidth=1.0, label="perfect calibration")
    ax.plot(conf[filled], acc[filled], "o", color="black", markersize=3.5, label="bin (mean conf, acc)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.03)  # room for markers at accuracy 1
    ax.set_ylabel("Accuracy")
    ax.set_title(f"{title}\nECE = {bins.ece:.4f}  ({bins.n_bins} bins, n = {int(bins.count.sum())})")
    ax.legend(loc="upper left", fontsize=8, framealpha=0.9)
    ax.grid(alpha=0.3)
    ax.set_axisbelow(True)

    ax_hist.bar(centers, bins.count, width=width * 0.9, color="0.55", edgecolor="0.3", linewidth=0.5)
    ax_hist.set_xlabel("Confidence (top-class probability)")
    ax_hist.set_ylabel("Samples")
    ax_hist.grid(axis="y", alpha=0.3)
    ax_hist.set_axisbelow(True)


# ----------------------------------------------------------------------------- unknown threshold


def plot_threshold_analysis(
    curve: Sequence[Mapping[str, Any]],
    recommendation: Mapping[str, Any],
    title: str = "Unknown threshold",
    out_path: str | Path | None = None,
) -> Figure:
    """Left: coverage, accepted accuracy and accepted macro-F1 against the threshold (val sweep), the
    recommended threshold marked. Right: accepted accuracy against coverage, with the recommended
    point on val and (when ``recommendation["test"]`` is there) on test."""

    def col(key: str) -> np.ndarray:
        return np.array([np.nan if r[key] is None else r[key] for r in curve], dtype=np.float64)

    thr, cov, acc, f1 = col("threshold"), col("coverage"), col("accepted_accuracy"), col("accepted_macro_f1")
    t0 = float(recommendation["threshold"])
    fig = new_figure((11.0, 4.6), layout="constrained")
    ax, ax_rc = fig.subplots(1, 2)
    ax.plot(thr, cov, color="#4C72B0", label="coverage")
    ax.plot(thr, acc, color="#C44E52", label="accepted accuracy")
    ax.plot(thr, f1, color="#55A868", linestyle="--", label="accepted macro-F1")
    ax.axvline(t0, color="0.3", linestyle=":", label=f"recommended {t0:.2f}")
    if recommendation.get("policy") == "target_accuracy":
        ax.axhline(float(recommendation["target"]), color="#C44E52", linewidth=0.8, alpha=0.5, label="target accuracy")
    elif recommendation.get("policy") == "target_coverage":
        ax.axhline(float(recommendation["target"]), color="#4C72B0", linewidth=0.8, alpha=0.5, label="target coverage")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.03)
    ax.set_xlabel("Threshold on the top calibrated probability")
    ax.set_ylabel("Fraction")
    ax.set_title("Val sweep")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8, framealpha=0.9)

    ax_rc.plot(cov, acc, color="#C44E52", label="val")
    for split, marker in (("val", "o"), ("test", "s")):
        point = recommendation.get(split)
        if point and point.get("accepted_accuracy") is not None:
            ax_rc.plot(
                point["coverage"],
                point["accepted_accuracy"],
                marker,
                color="black" if split == "val" else "#DD8452",
                label=f"{split} at {t0:.2f}: coverage {point['coverage']:.2f}, accuracy {point['accepted_accuracy']:.3f}",
            )
    ax_rc.set_xlim(0, 1.02)
    ax_rc.set_ylim(0, 1.03)
    ax_rc.set_xlabel("Coverage (fraction accepted)")
    ax_rc.set_ylabel("Accuracy of accepted predictions")
    ax_rc.set_title("Accuracy vs coverage")
    ax_rc.grid(alpha=0.3)
    ax_rc.legend(loc="lower left", fontsize=8, framealpha=0.9)
    fig.suptitle(f"{title}: {recommendation.get('rule', '')}", fontsize=11)
    return finish(fig, out_path)


# ----------------------------------------------------------------------------- mistakes


def plot_confident_mistakes(
    images: object,
    y_true: object,
    y_pred: object,
    confidence: object,
    class_names: Sequence[str],
    max_images: int = 24,
    n_cols: int = 8,
    title: str = "Most confident mistakes",
    out_path: str | Path | None = None,
) -> Figure:
    """The ``max_images`` misclassified faces with the highest predicted-class confidence."""
    imgs = check_images(images)
    t = np.asarray(y_true).astype(np.int64).ravel()
    p = np.asarray(y_pred).astype(np.int64).ravel()
    conf = np.asarray(confidence, dtype=np.float64).ravel()
    if not (imgs.shape[0] == t.shape[0] == p.shape[0] == conf.shape[0]):
        raise ValueError("images, y_true, y_pred and confidence differ in length")
    wrong = np.flatnonzero(t != p)
    if wrong.size == 0:
        return finish(text_figure("no misclassified samples", title), out_path)
    order = wrong[np.argsort(-conf[wrong], kind="stable")][:max_images]
    n_cols = min(n_cols, order.size)
    n_rows = int(np.ceil(order.size / n_cols))
    tile_w, tile_h = 1.25, 1.6
    fig = new_figure((tile_w * n_cols + 0.2, tile_h * n_rows + 0.6))
    grid = fig.add_gridspec(
        n_rows, n_cols, left=0.01, right=0.99, bottom=0.01, top=1 - 0.6 / (tile_h * n_rows + 0.6), wspace=0.08, hspace=0.55
    )
    for k, i in enumerate(order):
        ax = fig.add_subplot(grid[k // n_cols, k % n_cols])
        show_face(ax, imgs[i])
        ax.set_title(f"true: {class_names[t[i]]}\npred: {class_names[p[i]]} {conf[i]:.2f}", fontsize=7.5, color="#8B0000", pad=3)
    fig.suptitle(f"{title} ({order.size} of {wrong.size} errors)", fontsize=12)
    return finish(fig, out_path)
