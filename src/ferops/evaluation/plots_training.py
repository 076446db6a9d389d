"""Training curves from logged metric histories (lists of ``(step, value)`` or MLflow ``Metric``)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ferops.evaluation.figures import finish, new_figure, text_figure

__all__ = ["plot_training_curves"]


def _points(series: Iterable[Any]) -> tuple[np.ndarray, np.ndarray]:
    """``[(step, value), ...]`` or objects with ``.step`` / ``.value`` (MLflow ``Metric``) -> sorted arrays."""
    pairs = []
    for item in series:
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
    history: Mapping[str, Iterable[Any]],
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
        return finish(text_figure("no metrics recorded", title), out_path)

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
            ax.plot(
                steps,
                values,
                linestyle="--" if dashed else "-",
                marker=marker,
                markersize=3,
                linewidth=1.4,
                color=color,
                label=name,
            )
        ax.set_title(panel_titles[kind])
        ax.set_xlabel(x_label)
        ax.set_ylabel({"loss": "loss", "score": "score"}.get(kind, "value"))
        if kind == "score":
            lo = min(float(v.min()) for _, _, v in series)
            hi = max(float(v.max()) for _, _, v in series)
            if lo >= 0.0 and hi <= 1.0:
                ax.set_ylim(max(0.0, lo - 0.05), min(1.0, hi + 0.05) if hi < 0.95 else 1.0)
        if kind == "other":
            values_all = np.concatenate([v for _, _, v in series])
            if values_all.min() > 0 and values_all.max() / values_all.min() > 100:
                ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, framealpha=0.9)
    fig.suptitle(title, fontsize=13)
    return finish(fig, out_path)
