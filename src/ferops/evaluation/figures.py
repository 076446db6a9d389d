"""Figures on their own Agg canvas (no pyplot), and the pieces every ``plot_*`` shares.

Every ``plot_*`` function in ``ferops.evaluation`` builds a :class:`matplotlib.figure.Figure`
with :func:`new_figure`, so it never touches pyplot's global state or backend, never needs
a display and leaves no figure open. Each returns the Figure and, given ``out_path``, also
writes it as PNG (:func:`finish`). Inputs are numpy arrays; no torch, no mlflow.

Face images are ``uint8 [N, 48, 48]`` shown with a gray colour map on a fixed
0..255 scale and nearest-neighbour sampling, so pixels are what the model saw.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["DPI", "check_images", "finish", "new_figure", "save_figure", "show_face", "text_figure"]

DPI = 110


def new_figure(figsize: tuple[float, float], **kwargs: Any) -> Figure:
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


def finish(fig: Figure, out_path: str | Path | None) -> Figure:
    """Return ``fig``, written as PNG first when ``out_path`` is given (the ``plot_*`` contract)."""
    if out_path is not None:
        save_figure(fig, out_path)
    return fig


def show_face(ax, image: np.ndarray) -> None:
    """A 0..255 gray face, nearest-neighbour, without ticks or frame."""
    ax.imshow(image, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def check_images(images: object) -> np.ndarray:
    """``[N, H, W]`` (a channel of 1, first or last, is dropped)."""
    arr = np.asarray(images)
    if arr.ndim == 4 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    elif arr.ndim == 4 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 3:
        raise ValueError(f"images must be [N, H, W] (or with a channel of 1), got shape {arr.shape}")
    return arr


def text_figure(message: str, title: str, figsize: tuple[float, float] = (6, 2.5)) -> Figure:
    """A figure that only says ``message`` (what a plot shows when there is nothing to draw)."""
    fig = new_figure(figsize)
    ax = fig.add_subplot()
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=12, color="0.3")
    ax.set_title(title)
    return fig
