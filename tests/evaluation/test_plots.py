"""Every figure builds from small synthetic inputs, carries the right labels and saves as PNG."""

from __future__ import annotations

import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

from ferops.evaluation import plots
from ferops.evaluation.metrics import confusion_matrix, reliability_bins

NAMES = ["angry", "happy", "sad"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_png(path: Path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == PNG_MAGIC


def _texts(fig: Figure) -> list[str]:
    return [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text"))]


def _axes_titled(fig: Figure, title: str):
    (ax,) = [a for a in fig.axes if a.get_title() == title]
    return ax


@pytest.fixture
def faces() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (12, 48, 48), dtype=np.uint8), np.array([0, 1, 2, 0, 1, 0, 0, 1, 1, 0, 1, 0])


def test_confusion_matrix_plot(tmp_path: Path) -> None:
    cm = confusion_matrix([0, 0, 1, 2], [0, 1, 1, 1], 3)
    fig = plots.plot_confusion_matrix(cm, NAMES, out_path=tmp_path / "cm.png")
    assert isinstance(fig, Figure) and _is_png(tmp_path / "cm.png")
    counts_ax, norm_ax = _axes_titled(fig, "Counts"), _axes_titled(fig, "Normalised by true class (recall)")
    assert [t.get_text() for t in counts_ax.get_xticklabels()] == NAMES
    assert counts_ax.get_xlabel() == "Predicted class" and counts_ax.get_ylabel() == "True class"
    # row-normalised: true "sad" (1 sample) predicted "happy" -> 1.00 in cell (2, 1); class 0 row is 0.50 0.50 0.00
    cell_texts = [t.get_text() for t in norm_ax.texts]
    assert cell_texts[:3] == ["0.50", "0.50", "0.00"] and cell_texts[7] == "1.00"
    assert [t.get_text() for t in counts_ax.texts] == ["1", "1", "0", "0", "1", "0", "0", "1", "0"]


def test_confusion_matrix_plot_handles_class_without_samples() -> None:
    cm = np.array([[2, 0, 0], [0, 0, 0], [1, 0, 1]])  # class 1: no samples, never predicted
    fig = plots.plot_confusion_matrix(cm, NAMES)
    norm_ax = _axes_titled(fig, "Normalised by true class (recall)")
    assert [t.get_text() for t in norm_ax.texts][3:6] == ["–", "–", "–"]  # recall undefined, not 0


def test_confusion_matrix_plot_checks_names() -> None:
    with pytest.raises(ValueError):
        plots.plot_confusion_matrix(np.eye(3, dtype=int), ["a", "b"])


def test_per_class_accuracy_plot(tmp_path: Path) -> None:
    cm = np.array([[3, 1, 0], [0, 0, 0], [1, 0, 1]])
    fig = plots.plot_per_class_accuracy(cm, NAMES, out_path=tmp_path / "pc.png")
    assert _is_png(tmp_path / "pc.png")
    ax = fig.axes[0]
    heights = [p.get_height() for p in ax.patches]
    np.testing.assert_allclose(heights, [0.75, 0.0, 0.5])
    texts = _texts(fig)
    assert "no\nsamples" in texts
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["accuracy 0.667", "balanced accuracy 0.625"]  # 4/6 ; (0.75 + 0.5)/2


def test_reliability_diagram_title_has_ece(tmp_path: Path) -> None:
    probs = np.array([[0.9, 0.1], [0.7, 0.3], [0.35, 0.65], [0.55, 0.45]])
    bins = reliability_bins(probs, [0, 1, 1, 1], n_bins=5)
    fig = plots.plot_reliability_diagram(bins, out_path=tmp_path / "rel.png")
    assert _is_png(tmp_path / "rel.png")
    assert "ECE = 0.2500" in fig.axes[0].get_title()
    hist_heights = [p.get_height() for p in fig.axes[1].patches]
    assert hist_heights == [0, 0, 1, 2, 1]


def test_training_curves_panels_and_colours(tmp_path: Path) -> None:
    Metric = namedtuple("Metric", "key value step")  # what MlflowClient.get_metric_history returns
    history = {
        "train/loss": [(0, 2.0), (10, 1.0), (20, 0.5)],
        "val/loss": [(20, 0.9), (0, 1.9)],  # unsorted on purpose
        "train/acc": [(0, 0.2), (20, 0.7)],
        "val/acc": [Metric("val/acc", 0.1, 0), Metric("val/acc", 0.6, 20)],
        "val/macro_f1": [(0, 0.1), (20, 0.5)],
        "lr-AdamW": [(0, 1e-3), (20, 1e-6)],
        "empty": [],
    }
    fig = plots.plot_training_curves(history, out_path=tmp_path / "curves.png")
    assert _is_png(tmp_path / "curves.png")
    assert [ax.get_title() for ax in fig.axes] == ["Loss", "Accuracy / F1", "Other"]
    lines = {line.get_label(): line for ax in fig.axes for line in ax.get_lines()}
    assert set(lines) == {"train/loss", "val/loss", "train/acc", "val/acc", "val/macro_f1", "lr-AdamW"}
    np.testing.assert_array_equal(lines["val/loss"].get_xdata(), [0, 20])  # sorted by step
    assert lines["val/loss"].get_linestyle() == "--" and lines["train/loss"].get_linestyle() == "-"
    assert lines["val/acc"].get_color() == lines["train/acc"].get_color() != lines["val/macro_f1"].get_color()
    assert fig.axes[2].get_yscale() == "log"


def test_training_curves_empty_history() -> None:
    fig = plots.plot_training_curves({})
    assert "no metrics recorded" in _texts(fig)


def test_class_distribution(tmp_path: Path) -> None:
    labels = {"test": np.array([2, 2]), "train": np.array([0, 0, 0, 1, 2]), "val": np.array([1])}
    fig = plots.plot_class_distribution(labels, NAMES, out_path=tmp_path / "dist.png")
    assert _is_png(tmp_path / "dist.png")
    ax = fig.axes[0]
    # splits ordered train, val, test; bars in that order, one per class
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train (n=5)", "val (n=1)", "test (n=2)"]
    heights = [p.get_height() for p in ax.patches]
    assert heights == [3, 1, 1, 0, 1, 0, 0, 0, 2]
    np.testing.assert_allclose([p.get_height() for p in fig.axes[1].patches][:3], [0.6, 0.2, 0.2])
    with pytest.raises(ValueError, match="outside"):
        plots.plot_class_distribution({"train": np.array([0, 3])}, NAMES)


def test_sample_grid(tmp_path: Path, faces: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = faces
    labels = labels.copy()
    labels[labels == 2] = 0  # class "sad" has no image: its row stays empty but labelled
    fig = plots.plot_sample_grid(images, labels, NAMES, n_per_class=4, out_path=tmp_path / "s.png")
    assert _is_png(tmp_path / "s.png")
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == 4 + 4  # angry: 7 images -> 4 shown; happy: 5 -> 4; sad: none
    im = shown[0].images[0]
    assert im.get_cmap().name == "gray" and im.get_clim() == (0, 255) and im.get_interpolation() == "nearest"
    assert any("sad\n(n=0)" in t for t in _texts(fig))
    # channel-last input works too
    plots.plot_sample_grid(images[..., None], labels, NAMES, n_per_class=2)


def test_confident_mistakes(tmp_path: Path, faces: tuple[np.ndarray, np.ndarray]) -> None:
    images, _ = faces
    y_true = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2])
    y_pred = np.array([0, 2, 2, 1, 1, 0, 0, 1, 2, 0, 1, 2])  # wrong at 1, 3, 5
    conf = np.array([0.9, 0.6, 0.9, 0.95, 0.9, 0.7, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9])
    fig = plots.plot_confident_mistakes(images, y_true, y_pred, conf, NAMES, max_images=2, out_path=tmp_path / "m.png")
    assert _is_png(tmp_path / "m.png")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["true: angry\npred: happy 0.95", "true: sad\npred: angry 0.70"]  # most confident first
    assert "(2 of 3 errors)" in fig.get_suptitle()
    np.testing.assert_array_equal(fig.axes[0].images[0].get_array(), images[3])


def test_confident_mistakes_without_errors() -> None:
    images = np.zeros((2, 48, 48), np.uint8)
    fig = plots.plot_confident_mistakes(images, [0, 1], [0, 1], [0.9, 0.8], NAMES)
    assert "no misclassified samples" in _texts(fig)


def test_no_pyplot_figures_left_open() -> None:
    import matplotlib.pyplot as plt

    before = len(plt.get_fignums())
    plots.plot_confusion_matrix(np.eye(3, dtype=int), NAMES)
    assert len(plt.get_fignums()) == before


def test_evaluation_imports_neither_torch_nor_mlflow() -> None:
    code = (
        "import sys, ferops.evaluation, ferops.evaluation.plots;"
        "bad = [m for m in ('torch', 'mlflow', 'tensorflow') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
