"""Old import path of every figure (``from ferops.evaluation import plots``; ``plots.plot_*``).

The figures live in one module per subject; this file only re-exports them so callers that
name ``ferops.evaluation.plots`` keep working:

* :mod:`ferops.evaluation.figures`         Agg canvas, ``new_figure`` / ``save_figure``
* :mod:`ferops.evaluation.plots_eval`      confusion matrix, per-class recall, reliability, mistakes
* :mod:`ferops.evaluation.plots_data`      class distribution, sample grid
* :mod:`ferops.evaluation.plots_training`  training curves
"""

from ferops.evaluation.figures import DPI, new_figure, save_figure
from ferops.evaluation.plots_data import plot_class_distribution, plot_sample_grid
from ferops.evaluation.plots_eval import (
    plot_confident_mistakes,
    plot_confusion_matrix,
    plot_per_class_accuracy,
    plot_reliability_diagram,
)
from ferops.evaluation.plots_training import plot_training_curves

__all__ = [
    "DPI",
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
