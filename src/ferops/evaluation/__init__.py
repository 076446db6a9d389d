"""Evaluation: metrics (scikit-learn + numpy), figures (matplotlib, Agg) and report writers.

No torch and no mlflow here: callers pass numpy arrays and log the files written.
"""

from ferops.evaluation.metrics import (
    ReliabilityBins,
    accuracy,
    add_prefix,
    balanced_accuracy,
    classification_metrics,
    confusion_matrix,
    expected_calibration_error,
    macro_f1,
    nll,
    per_class_metrics,
    reliability_bins,
    softmax,
    weighted_f1,
)
from ferops.evaluation.report import (
    classification_report_text,
    data_stats,
    write_data_report,
    write_evaluation_report,
)

__all__ = [
    "ReliabilityBins",
    "accuracy",
    "add_prefix",
    "balanced_accuracy",
    "classification_metrics",
    "classification_report_text",
    "confusion_matrix",
    "data_stats",
    "expected_calibration_error",
    "macro_f1",
    "nll",
    "per_class_metrics",
    "reliability_bins",
    "softmax",
    "weighted_f1",
    "write_data_report",
    "write_evaluation_report",
]
