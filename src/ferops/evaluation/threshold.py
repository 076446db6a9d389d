"""The "unknown" threshold: sweep a confidence threshold on val, recommend one under a stated policy.

A prediction is *accepted* when its top (calibrated) probability is ``>= threshold``; below it the
runtime may answer "unknown" (``ferops.runtime.bundle``, post-processing step 4). At every
threshold of a fixed grid (0.00, 0.01, ..., 1.00) the sweep records:

- ``coverage``: fraction of rows accepted;
- ``accepted_accuracy``: accuracy over the accepted rows (``None`` when none is accepted);
- ``accepted_macro_f1``: macro-F1 over the accepted rows (``ferops.evaluation.metrics.macro_f1``).

Policies (``export.unknown.policy``; the targets are ``export.unknown.*``):

- ``target_accuracy``: the LOWEST threshold (so the most coverage) whose accepted val accuracy
  reaches ``target_accuracy`` while accepting at least ``min_coverage`` of val (a handful of
  accepted rows says nothing). If no threshold does, the one with the highest accepted accuracy
  among those keeping ``min_coverage``, with ``reached: false``.
- ``target_coverage``: the HIGHEST threshold that still accepts ``target_coverage`` of val
  (coverage only falls as the threshold rises, so this is the strictest one meeting it).

Only val decides; :func:`accepted_scores` then reports the chosen threshold on test as well.
numpy + scikit-learn only (no torch).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ferops.evaluation.metrics import _check_probs, macro_f1

__all__ = ["POLICIES", "THRESHOLDS", "accepted_scores", "recommend_threshold", "threshold_curve"]

POLICIES = ("target_accuracy", "target_coverage")
THRESHOLDS = np.round(np.linspace(0.0, 1.0, 101), 2)


def accepted_scores(probs: object, labels: object, threshold: float) -> dict[str, Any]:
    """Coverage, accepted accuracy and accepted macro-F1 of ``probs [N, C]`` at one threshold."""
    p, y = _check_probs(probs, labels)
    conf, pred = p.max(axis=1), p.argmax(axis=1)
    keep = conf >= threshold
    n_acc = int(keep.sum())
    return {
        "threshold": float(threshold),
        "n": int(y.size),
        "n_accepted": n_acc,
        "coverage": n_acc / y.size,
        "accepted_accuracy": float(np.mean(pred[keep] == y[keep])) if n_acc else None,
        "accepted_macro_f1": macro_f1(y[keep], pred[keep], p.shape[1]) if n_acc else None,
    }


def threshold_curve(probs: object, labels: object, thresholds: Sequence[float] | np.ndarray = THRESHOLDS) -> list[dict[str, Any]]:
    """:func:`accepted_scores` at every threshold (rows in threshold order)."""
    return [accepted_scores(probs, labels, float(t)) for t in np.sort(np.asarray(thresholds, dtype=np.float64))]


def recommend_threshold(
    curve: Sequence[Mapping[str, Any]],
    policy: str = "target_accuracy",
    target_accuracy: float = 0.8,
    target_coverage: float = 0.8,
    min_coverage: float = 0.05,
) -> dict[str, Any]:
    """The recommended threshold on a val ``curve`` under ``policy`` (module docstring).

    Returns ``{"threshold", "policy", "target", "reached", "rule", "val": <its curve row>}``.
    """
    if not curve:
        raise ValueError("empty threshold curve")
    if policy not in POLICIES:
        raise ValueError(f"unknown threshold policy {policy!r}; one of {POLICIES}")
    for name, value in (
        ("target_accuracy", target_accuracy),
        ("target_coverage", target_coverage),
        ("min_coverage", min_coverage),
    ):
        if not 0.0 <= float(value) <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    rows = sorted(curve, key=lambda r: r["threshold"])
    if policy == "target_coverage":
        target = float(target_coverage)
        ok = [r for r in rows if r["coverage"] >= target]
        reached = bool(ok)
        best = ok[-1] if ok else rows[0]
        rule = f"highest threshold accepting >= {target:.0%} of val"
    else:
        target = float(target_accuracy)
        usable = [r for r in rows if r["n_accepted"] > 0 and r["coverage"] >= min_coverage]
        if not usable:  # min_coverage above what any threshold keeps: fall back to accepting everything
            usable = [rows[0]]
        ok = [r for r in usable if r["accepted_accuracy"] is not None and r["accepted_accuracy"] >= target]
        reached = bool(ok)
        best = ok[0] if ok else max(usable, key=lambda r: (r["accepted_accuracy"] or 0.0, -r["threshold"]))
        rule = f"lowest threshold whose accepted val accuracy is >= {target:.1%} with coverage >= {min_coverage:.0%}" + (
            "" if reached else "; not reached: the threshold with the highest accepted accuracy instead"
        )
    return {
        "threshold": float(best["threshold"]),
        "policy": policy,
        "target": target,
        "min_coverage": float(min_coverage) if policy == "target_accuracy" else None,
        "reached": reached,
        "rule": rule,
        "accept_if": "top calibrated probability >= threshold",
        "val": dict(best),
    }
