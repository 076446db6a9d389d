"""Evaluation and data figures (matplotlib, Agg canvas, no pyplot).

Every ``plot_*`` function builds a :class:`matplotlib.figure.Figure` on its own Agg
canvas, so it never touches pyplot's global state or backend, never needs a display
and leaves no figure open. Each returns the Figure and, given ``out_path``, also
writes it as PNG. Inputs are numpy arrays; no torch, no mlflow.

Face images are ``uint8 [N, 48, 48]`` shown with a gray colour map on a fixed
0..255 scale and nearest-neighbour sampling, so pixels are what the model saw.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ferops.evaluation.metrics import ReliabilityBins

__all__ = [
    "new_figure",
    "plot_class_distribution",
    "plot_confident_mistakes",
    "plot_confusion_matrix",
    "plot_per_class_accuracy",
    "plot_reliability_diagram",
    "plot_sample_grid",
    "plot_training_curves",
    "save_figure",
]

DPI = 110
_SPLIT_ORDER = ("train", "val", "test")


def new_figure(figsize: tuple[float, float], **kwargs: object) -> Figure:
    """A Figure with an Agg canvas attached (independent of pyplot and of the session's backend)."""
    fig = Figure(figsize=figsize, dpi=DPI, **kwargs)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, out_path: str | Path, dpi: int = DPI) -> Path:
    """Write ``fig`` as PNG (parent directories created); returns the path."""
    path = Path(out_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, format="png", facecolor="white")
    return path


def _finish(fig: Figure, out_path: str | Path | None) -> Figure:
    if out_path is not None:
        save_figure(fig, out_path)
    return fig


def _show_face(ax, image: np.ndarray) -> None:  # noqa: ANN001 (matplotlib Axes)
    ax.imshow(image, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def _check_images(images: object) -> np.ndarray:
    arr = np.asarray(images)
    if arr.ndim == 4 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    elif arr.ndim == 4 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 3:
        raise ValueError(f"images must be [N, H, W] (or with a channel of 1), got shape {arr.shape}")
    return arr


def _text_figure(message: str, title: str, figsize: tuple[float, float] = (6, 2.5)) -> Figure:
    fig = new_figure(figsize)
    ax = fig.add_subplot()
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=12, color="0.3")
    ax.set_title(title)
    return fig


# ----------------------------------------------------------------------------- confusion matrix


def _draw_matrix(  # noqa: PLR0913
    ax,  # noqa: ANN001
    matrix: np.ndarray,
    class_names: Sequence[str],
    fmt: str,
    title: str,
    vmax: float,
    blank_rows: np.ndarray | None = None,
) -> object:
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
    im = _draw_matrix(ax_norm, norm, class_names, ".2f", "Normalised by true class (recall)", 1.0,
                      blank_rows=support[:, 0] == 0)
    fig.colorbar(im, ax=ax_norm, shrink=0.8, label="fraction of true class")
    total = int(cm.sum())
    acc = np.trace(cm) / total if total else 0.0
    fig.suptitle(f"{title}  (n={total}, accuracy={acc:.3f})", fontsize=13)
    return _finish(fig, out_path)


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
    return _finish(fig, out_path)


# ----------------------------------------------------------------------------- reliability


def plot_reliability_diagram(
    bins: ReliabilityBins,
    title: str = "Reliability diagram",
    out_path: str | Path | None = None,
) -> Figure:
    """Accuracy vs confidence per bin (bars), the gap to the diagonal (hatched) and a count histogram below."""
    fig = new_figure((5.6, 6.2), layout="constrained")
    ax, ax_hist = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    width = bins.upper - bins.lower
    centers = (bins.lower + bins.upper) / 2
    filled = bins.count > 0
    acc = np.where(filled, bins.accuracy, 0.0)
    conf = np.where(filled, bins.confidence, 0.0)

    ax.bar(bins.lower[filled], acc[filled], width=width[filled], align="edge", color="#4C72B0",
           edgecolor="0.2", linewidth=0.6, label="accuracy")
    gap_bottom = np.minimum(acc, conf)[filled]
    gap_height = np.abs(conf - acc)[filled]
    ax.bar(bins.lower[filled], gap_height, bottom=gap_bottom, width=width[filled], align="edge",
           facecolor="none", edgecolor="#C44E52", hatch="///", linewidth=0.8, label="gap to confidence")
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
    return _finish(fig, out_path)


# ----------------------------------------------------------------------------- training curves


def _points(series: object) -> tuple[np.ndarray, np.ndarray]:
    """``[(step, value), ...]`` or objects with ``.step`` / ``.value`` (MLflow ``Metric``) -> sorted arrays."""
    pairs = []
    for item in series:  # type: ignore[union-attr]
        if hasattr(item, "step") and hasattr(item, "value"):
            pairs.append((float(item.step), float(item.value)))
        else:
            step, value = item
            pairs.append((float(step), float(value)))
    pairs.sort(key=lambda sv: sv[0])
    if not pairs:
        return np.zeros(0), np.zeros(0)
    arr = np.asarray(pairs, dtype=np.float64)
    return arr[:, 0], arr[:, 1]


_SPLIT_TOKEN = re.compile(r"(^|[/_.\-])(train|training|val|valid|validation|test)(?=$|[/_.\-])", re.IGNORECASE)


def _base_name(name: str) -> str:
    """``"val/loss"``, ``"train_loss_epoch"`` -> ``"loss"``-like keys, so train and val share a colour."""
    base = _SPLIT_TOKEN.sub(r"\1", name)
    base = re.sub(r"[/_.\-]{2,}", "/", base).strip("/_.-")
    return re.sub(r"[/_.\-](step|epoch)$", "", base) or name


def _panel_of(name: str) -> str:
    low = name.lower()
    if "loss" in low or "nll" in low:
        return "loss"
    if any(k in low for k in ("acc", "f1", "precision", "recall")):
        return "score"
    return "other"


def plot_training_curves(
    history: Mapping[str, object],
    title: str = "Training curves",
    x_label: str = "step",
    out_path: str | Path | None = None,
) -> Figure:
    """One panel of losses, one of accuracy / F1 scores, one of anything else (e.g. learning rate).

    ``history`` maps metric name -> ``[(step, value), ...]`` (MLflow ``Metric`` objects
    work too). Metrics whose name holds "val" are drawn dashed, in the colour of their train
    counterpart (same name once the split word is removed), so pairs read at a glance.
    """
    groups: dict[str, list[tuple[str, np.ndarray, np.ndarray]]] = {"loss": [], "score": [], "other": []}
    for name in sorted(history):
        steps, values = _points(history[name])
        if steps.size:
            groups[_panel_of(name)].append((name, steps, values))
    panels = [(k, v) for k, v in groups.items() if v]
    if not panels:
        return _finish(_text_figure("no metrics recorded", title), out_path)

    fig = new_figure((5.2 * len(panels), 4.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    panel_titles = {"loss": "Loss", "score": "Accuracy / F1", "other": "Other"}
    colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22"]
    for ax, (kind, series) in zip(axes, panels, strict=True):
        bases: list[str] = []
        for name, _, _ in series:
            if _base_name(name) not in bases:
                bases.append(_base_name(name))
        for name, steps, values in series:
            dashed = "val" in name.lower()
            marker = "o" if steps.size <= 30 else None
            color = colors[bases.index(_base_name(name)) % len(colors)]
            ax.plot(steps, values, linestyle="--" if dashed else "-", marker=marker, markersize=3, linewidth=1.4,
                    color=color, label=name)
        ax.set_title(panel_titles[kind])
        ax.set_xlabel(x_label)
        ax.set_ylabel({"loss": "loss", "score": "score"}.get(kind, "value"))
        if kind == "score":
            lo = min(float(v.min()) for _, _, v in series)
            hi = max(float(v.max()) for _, _, v in series)
            if 0.0 <= lo and hi <= 1.0:
                ax.set_ylim(max(0.0, lo - 0.05), min(1.0, hi + 0.05) if hi < 0.95 else 1.0)
        if kind == "other":
            values_all = np.concatenate([v for _, _, v in series])
            if values_all.min() > 0 and values_all.max() / values_all.min() > 100:
                ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, framealpha=0.9)
    fig.suptitle(title, fontsize=13)
    return _finish(fig, out_path)


# ----------------------------------------------------------------------------- data


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
        bars = ax_count.bar(x + offset, c, width=width, color=palette[k % len(palette)], edgecolor="0.25",
                            linewidth=0.4, label=f"{s} (n={int(c.sum())})")
        if annotate:
            ax_count.bar_label(bars, fontsize=6.5, padding=1, rotation=90)
        share = c / c.sum() if c.sum() else np.zeros(n)
        ax_share.bar(x + offset, share, width=width, color=palette[k % len(palette)], edgecolor="0.25",
                     linewidth=0.4, label=s)
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
    return _finish(fig, out_path)


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
    imgs = _check_images(images)
    labels = np.asarray(labels).astype(np.int64).ravel()
    if labels.shape[0] != imgs.shape[0]:
        raise ValueError(f"{imgs.shape[0]} images but {labels.shape[0]} labels")
    n = len(class_names)
    rng = np.random.default_rng(seed)
    tile = 0.95
    fig = new_figure((tile * n_per_class + 1.6, tile * n + 0.7))
    grid = fig.add_gridspec(n, n_per_class, left=1.5 / (tile * n_per_class + 1.6), right=0.99,
                            top=1 - 0.55 / (tile * n + 0.7), bottom=0.01, wspace=0.06, hspace=0.06)
    for c in range(n):
        idx = np.flatnonzero(labels == c)
        chosen = rng.choice(idx, size=min(n_per_class, idx.size), replace=False) if idx.size else idx
        for j in range(n_per_class):
            ax = fig.add_subplot(grid[c, j])
            if j < chosen.size:
                _show_face(ax, imgs[chosen[j]])
            else:
                ax.axis("off")
            if j == 0:
                ax.set_ylabel(f"{class_names[c]}\n(n={idx.size})", rotation=0, ha="right", va="center",
                              fontsize=9, labelpad=6)
                if not chosen.size:  # axis is off: label it with text instead
                    ax.text(-0.08, 0.5, f"{class_names[c]}\n(n=0)", transform=ax.transAxes, ha="right",
                            va="center", fontsize=9)
    fig.suptitle(title, fontsize=12)
    return _finish(fig, out_path)


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
    imgs = _check_images(images)
    t = np.asarray(y_true).astype(np.int64).ravel()
    p = np.asarray(y_pred).astype(np.int64).ravel()
    conf = np.asarray(confidence, dtype=np.float64).ravel()
    if not (imgs.shape[0] == t.shape[0] == p.shape[0] == conf.shape[0]):
        raise ValueError("images, y_true, y_pred and confidence differ in length")
    wrong = np.flatnonzero(t != p)
    if wrong.size == 0:
        return _finish(_text_figure("no misclassified samples", title), out_path)
    order = wrong[np.argsort(-conf[wrong], kind="stable")][:max_images]
    n_cols = min(n_cols, order.size)
    n_rows = int(np.ceil(order.size / n_cols))
    tile_w, tile_h = 1.25, 1.6
    fig = new_figure((tile_w * n_cols + 0.2, tile_h * n_rows + 0.6))
    grid = fig.add_gridspec(n_rows, n_cols, left=0.01, right=0.99, bottom=0.01,
                            top=1 - 0.6 / (tile_h * n_rows + 0.6), wspace=0.08, hspace=0.55)
    for k, i in enumerate(order):
        ax = fig.add_subplot(grid[k // n_cols, k % n_cols])
        _show_face(ax, imgs[i])
        ax.set_title(f"true: {class_names[t[i]]}\npred: {class_names[p[i]]} {conf[i]:.2f}", fontsize=7.5,
                     color="#8B0000", pad=3)
    fig.suptitle(f"{title} ({order.size} of {wrong.size} errors)", fontsize=12)
    return _finish(fig, out_path)
