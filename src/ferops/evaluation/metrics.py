"""Classification and calibration metrics: scikit-learn for the hard-label scores, numpy for the rest.

Conventions (shared by every function here, by the plots and by the report):

* ``y_true`` / ``y_pred`` are integer class ids in ``[0, n_classes)``; ``probs`` is
  ``float [N, C]`` with rows that sum to 1 (softmax outputs, not logits; use
  :func:`softmax` first if you hold logits).
* Confusion matrices are ``[true, predicted]``: row ``i`` counts the samples whose
  true class is ``i``.
* Zero division gives 0, as sklearn's ``zero_division=0``: precision of a class that
  is never predicted is 0, recall of a class with no support is 0, F1 is 0 when
  precision + recall is 0. Nothing returns NaN.
* Macro averages (``macro_f1``, the "macro avg" row of the text report) run over the
  classes that occur in ``y_true`` or ``y_pred``; a class absent from both has no
  defined score and is left out, as sklearn's ``f1_score(average="macro")`` without
  ``labels`` and torchmetrics' macro average do. A class that is predicted but has
  no support stays in (its F1 is 0: every prediction of it is wrong).
  ``balanced_accuracy`` is the mean recall over classes with support.
* ECE is the standard top-label expected calibration error with ``n_bins`` equal-width
  bins ``(lo, hi]`` over ``[0, 1]`` (the first bin also holds confidence 0):
  ``sum_b |B_b| / N * |acc(B_b) - conf(B_b)|``.

Why ECE and NLL stay in numpy: this package is torch-free (int8 bundles are scored
without torch, see tests/evaluation/test_plots.py), so torchmetrics'
``MulticlassCalibrationError`` is out; sklearn's ``log_loss`` has no ``eps`` (it clips at
machine epsilon, so a confidently wrong int8 sample costs ~36 instead of ~27.6) and warns on
int8 rows, whose sums are off by ~1/256.

:func:`classification_metrics` gathers everything into a flat ``{str: float}`` dict
that ``json.dump``, ``dvc metrics diff`` and ``mlflow.log_metrics`` take as is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn import metrics as skm

from ferops.runtime import softmax  # the one torch-free softmax; re-exported here for old callers

__all__ = [
    "ReliabilityBins",
    "accuracy",
    "add_prefix",
    "balanced_accuracy",
    "classification_metrics",
    "confusion_matrix",
    "expected_calibration_error",
    "macro_f1",
    "metric_key",
    "nll",
    "per_class_metrics",
    "reliability_bins",
    "softmax",
    "weighted_f1",
]

# MLflow accepts metric names made of these characters (and "/" groups them in its UI).
_UNSAFE_KEY_CHARS = re.compile(r"[^\w\-. :/]")


# ----------------------------------------------------------------------------- inputs


def _as_labels(y: object, name: str) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer) and not np.all(np.equal(np.mod(arr, 1), 0)):
        raise ValueError(f"{name} must hold integer class ids, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def _check_pair(y_true: object, y_pred: object, n_classes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    t = _as_labels(y_true, "y_true")
    p = _as_labels(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length: {t.shape[0]} vs {p.shape[0]}")
    if t.size == 0:
        raise ValueError("no samples to evaluate")
    if n_classes is not None:
        if n_classes < 1:
            raise ValueError(f"n_classes must be >= 1, got {n_classes}")
        for name, arr in (("y_true", t), ("y_pred", p)):
            if arr.min() < 0 or arr.max() >= n_classes:
                raise ValueError(f"{name} holds ids outside [0, {n_classes}): min {arr.min()}, max {arr.max()}")
    return t, p


def _check_probs(probs: object, y_true: object) -> tuple[np.ndarray, np.ndarray]:
    """Validate ``probs [N, C]`` against ``y_true [N]``.

    Row sums may be off by a little (int8 models dequantise their softmax in steps of
    about 1/256), but rows far from 1 are logits or scores and are refused.
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"probs must be [N, C], got shape {p.shape}")
    t = _as_labels(y_true, "y_true")
    if p.shape[0] != t.shape[0]:
        raise ValueError(f"probs has {p.shape[0]} rows but y_true has {t.shape[0]} labels")
    if t.size == 0:
        raise ValueError("no samples to evaluate")
    if not np.all(np.isfinite(p)):
        raise ValueError("probs holds NaN or inf")
    sums = p.sum(axis=1)
    if p.min() < 0 or np.abs(sums - 1.0).max() > 0.1:
        raise ValueError(
            "probs rows must be probabilities (>= 0, summing to 1); "
            f"got min {p.min():.3g}, row sums in [{sums.min():.3g}, {sums.max():.3g}]: pass softmax(logits)"
        )
    if t.min() < 0 or t.max() >= p.shape[1]:
        raise ValueError(f"y_true holds ids outside [0, {p.shape[1]})")
    return p, t


# ----------------------------------------------------------------------------- hard-label metrics
# _check_pair stays in front of sklearn: sklearn silently drops ids outside ``labels`` and words
# its errors differently; callers and tests rely on these messages.


def accuracy(y_true: object, y_pred: object) -> float:
    """Fraction of samples with ``y_pred == y_true``."""
    t, p = _check_pair(y_true, y_pred)
    return float(skm.accuracy_score(t, p))


def confusion_matrix(y_true: object, y_pred: object, n_classes: int) -> np.ndarray:
    """``int64 [n_classes, n_classes]`` counts, rows = true class, columns = predicted class."""
    t, p = _check_pair(y_true, y_pred, n_classes)
    return skm.confusion_matrix(t, p, labels=np.arange(n_classes)).astype(np.int64)


def per_class_metrics(y_true: object, y_pred: object, n_classes: int) -> dict[str, np.ndarray]:
    """Per-class arrays, each of length ``n_classes``.

    Returns ``{"precision", "recall", "f1"}`` (float64, 0 where undefined) and
    ``{"support", "predicted"}`` (int64: true count and predicted count per class).
    """
    t, p = _check_pair(y_true, y_pred, n_classes)
    precision, recall, f1, support = skm.precision_recall_fscore_support(t, p, labels=np.arange(n_classes), zero_division=0)
    return {
        "precision": precision.astype(np.float64),
        "recall": recall.astype(np.float64),
        "f1": f1.astype(np.float64),
        "support": support.astype(np.int64),
        "predicted": np.bincount(p, minlength=n_classes).astype(np.int64),
    }


def macro_f1(y_true: object, y_pred: object, n_classes: int, labels: Sequence[int] | None = None) -> float:
    """Unweighted mean of per-class F1 over the classes present in ``y_true`` or ``y_pred``
    (or over ``labels``: e.g. the classes an external set shares with the model)."""
    t, p = _check_pair(y_true, y_pred, n_classes)
    return float(skm.f1_score(t, p, labels=None if labels is None else list(labels), average="macro", zero_division=0))


def weighted_f1(y_true: object, y_pred: object, n_classes: int) -> float:
    """Per-class F1 averaged with the support as weights."""
    t, p = _check_pair(y_true, y_pred, n_classes)
    return float(skm.f1_score(t, p, average="weighted", zero_division=0))


def balanced_accuracy(y_true: object, y_pred: object, n_classes: int) -> float:
    """Mean recall over the classes that have support (sklearn's ``balanced_accuracy_score``)."""
    t, p = _check_pair(y_true, y_pred, n_classes)
    # = balanced_accuracy_score, without its warning when y_pred holds a class that has no support
    return float(skm.recall_score(t, p, labels=np.unique(t), average="macro", zero_division=0))


# ----------------------------------------------------------------------------- probabilistic metrics


def nll(probs: object, y_true: object, eps: float = 1e-12) -> float:
    """Mean negative log-likelihood ``-mean(log(clip(p[i, y_i], eps, 1)))`` (natural log).

    The clip keeps a confidently wrong sample (p = 0, as int8 models often output)
    finite: it costs ``-log(eps)`` (about 27.6 for the default eps).
    """
    p, t = _check_probs(probs, y_true)
    picked = np.clip(p[np.arange(t.shape[0]), t], eps, 1.0)
    return float(-np.mean(np.log(picked)))


@dataclass(frozen=True)
class ReliabilityBins:
    """Reliability-diagram data for top-label confidence, one entry per bin.

    ``confidence`` and ``accuracy`` are the means over a bin's samples, NaN for
    empty bins (``count == 0``); ``ece`` is the expected calibration error.
    """

    lower: np.ndarray  # float [n_bins]
    upper: np.ndarray  # float [n_bins]
    confidence: np.ndarray  # float [n_bins], NaN when empty
    accuracy: np.ndarray  # float [n_bins], NaN when empty
    count: np.ndarray  # int64 [n_bins]
    ece: float

    @property
    def n_bins(self) -> int:
        return int(self.count.shape[0])

    def rows(self) -> list[dict[str, object]]:
        """JSON-ready rows (one per bin; ``None`` for the means of an empty bin)."""
        out = []
        for i in range(self.n_bins):
            empty = self.count[i] == 0
            out.append(
                {
                    "bin": i,
                    "bin_lower": float(self.lower[i]),
                    "bin_upper": float(self.upper[i]),
                    "confidence": None if empty else float(self.confidence[i]),
                    "accuracy": None if empty else float(self.accuracy[i]),
                    "count": int(self.count[i]),
                }
            )
        return out


def reliability_bins(probs: object, y_true: object, n_bins: int = 15) -> ReliabilityBins:
    """Bin top-label confidence into ``n_bins`` equal-width bins ``(lo, hi]`` and compare with accuracy."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    p, t = _check_probs(probs, y_true)
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == t).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # searchsorted(side="left") on the inner edges: a value equal to an edge goes to the lower bin,
    # so bins are (lo, hi]; values <= 0 land in bin 0 and values > 1 (rounding) in the last bin.
    idx = np.searchsorted(edges[1:-1], conf, side="left")
    count = np.bincount(idx, minlength=n_bins).astype(np.int64)
    conf_sum = np.bincount(idx, weights=conf, minlength=n_bins)
    acc_sum = np.bincount(idx, weights=correct, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.where(count > 0, conf_sum / np.maximum(count, 1), np.nan)
        mean_acc = np.where(count > 0, acc_sum / np.maximum(count, 1), np.nan)
    gaps = np.abs(acc_sum - conf_sum)  # = count * |acc - conf| per bin
    ece = float(gaps.sum() / t.shape[0])
    return ReliabilityBins(
        lower=edges[:-1].copy(),
        upper=edges[1:].copy(),
        confidence=mean_conf,
        accuracy=mean_acc,
        count=count,
        ece=ece,
    )


def expected_calibration_error(probs: object, y_true: object, n_bins: int = 15) -> float:
    """Top-label ECE with equal-width bins; see :func:`reliability_bins`."""
    return reliability_bins(probs, y_true, n_bins).ece


# ----------------------------------------------------------------------------- flat dict


def metric_key(kind: str, class_name: str) -> str:
    """``"<kind>/<class name>"`` with characters MLflow refuses replaced by ``_``."""
    return f"{kind}/{_UNSAFE_KEY_CHARS.sub('_', str(class_name))}"


def add_prefix(metrics: Mapping[str, float], prefix: str) -> dict[str, float]:
    """Return a copy with every key prefixed, e.g. ``add_prefix(m, "test/")`` before ``mlflow.log_metrics``."""
    return {f"{prefix}{k}": v for k, v in metrics.items()}


def classification_metrics(
    probs: object,
    y_true: object,
    class_names: Sequence[str],
    n_bins: int = 15,
) -> dict[str, float]:
    """Every evaluation number as one flat ``{key: float}`` dict (insertion-ordered).

    Keys: ``n_samples``, ``accuracy``, ``balanced_accuracy``, ``macro_f1``,
    ``weighted_f1``, ``nll``, ``ece``, then for every class ``precision/<name>``,
    ``recall/<name>``, ``f1/<name>``, ``support/<name>`` (see :func:`metric_key`).
    Predictions are ``argmax(probs)``. All values are Python floats (counts included,
    so the dict is homogeneous for MLflow); see the module docstring for the
    zero-division and macro-average conventions.
    """
    p, t = _check_probs(probs, y_true)
    n_classes = p.shape[1]
    names = [str(c) for c in class_names]
    if len(names) != n_classes:
        raise ValueError(f"{len(names)} class names for {n_classes} probability columns")
    keys = [metric_key("f1", n) for n in names]
    if len(set(keys)) != len(keys):
        raise ValueError(f"class names collide once made metric-safe: {names}")

    y_pred = p.argmax(axis=1)
    pc = per_class_metrics(t, y_pred, n_classes)

    out: dict[str, float] = {
        "n_samples": float(t.shape[0]),
        "accuracy": accuracy(t, y_pred),
        "balanced_accuracy": balanced_accuracy(t, y_pred, n_classes),
        "macro_f1": macro_f1(t, y_pred, n_classes),
        "weighted_f1": weighted_f1(t, y_pred, n_classes),
        "nll": nll(p, t),
        "ece": reliability_bins(p, t, n_bins).ece,
    }
    for i, name in enumerate(names):
        out[metric_key("precision", name)] = float(pc["precision"][i])
        out[metric_key("recall", name)] = float(pc["recall"][i])
        out[metric_key("f1", name)] = float(pc["f1"][i])
        out[metric_key("support", name)] = float(pc["support"][i])
    return out
