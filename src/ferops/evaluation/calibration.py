"""Temperature scaling (Guo et al. 2017): one scalar ``T`` fitted on val, applied as ``softmax(z / T)``.

The fit minimises the mean NLL of the val labels over ``log T`` (so ``T`` stays positive) with
SciPy's bounded Brent search; the NLL is convex in ``1 / T``, so the minimum is the global one.
``T > 1`` softens an over-confident model, ``T < 1`` sharpens an under-confident one; the argmax,
hence every label and accuracy, is unchanged.

Outputs are the model's dequantised outputs as the runtime sees them: logits, or probabilities
when the model ends in a softmax (``outputs_are_probs``, the bundle's ``softmax_in_model``). The
same :func:`ferops.runtime.bundle.calibrated_probs` serves the fit, the reports and the runtime,
so what is measured here is what the bundle returns. numpy + SciPy only (no torch).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import minimize_scalar

from ferops.evaluation.metrics import _as_labels, expected_calibration_error, nll
from ferops.runtime.bundle import calibrated_probs, log_scores

__all__ = ["TemperatureFit", "calibration_scores", "fit_temperature"]

# The search range of T: wide enough for any trained classifier, finite so a separable val set
# (NLL falling forever as T -> 0) stops at a documented edge instead of running away.
T_MIN, T_MAX = 0.05, 20.0


@dataclass(frozen=True)
class TemperatureFit:
    temperature: float
    nll_before: float  # on the fit split, T = 1
    nll_after: float
    n: int
    at_bound: bool  # the optimum sits on T_MIN / T_MAX: the split gives no interior minimum

    def to_dict(self) -> dict[str, object]:
        return asdict(self) | {"method": "temperature scaling: argmin_T NLL(softmax(z / T)), bounded Brent over log T"}


def _mean_nll(scores: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    """Exact mean NLL of ``softmax(scores / T)`` (no clipping: the objective stays smooth).

    Per row ``-log p_y = m + log1p(r + expm1(-m))`` with ``d = (z - z_y) / T``, ``m = max d >= 0`` and
    ``r = sum_{j != y} exp(d_j - m)``: the plain ``log(sum exp)`` rounds a confidently right row's
    ``log(1 + 1e-17)`` to 0, which makes the objective flat near small ``T`` and the search stop anywhere."""
    rows = np.arange(len(labels))
    d = (scores - scores[rows, labels][:, None]) / temperature
    m = d.max(axis=1)
    e = np.exp(d - m[:, None])
    e[rows, labels] = 0.0
    return float(np.mean(m + np.log1p(e.sum(axis=1) + np.expm1(-m))))


def fit_temperature(outputs: object, labels: object, outputs_are_probs: bool = False) -> TemperatureFit:
    """Fit one temperature on ``outputs [N, C]`` (logits or probabilities) and ``labels [N]``."""
    scores = log_scores(np.asarray(outputs), outputs_are_probs)
    y = _as_labels(labels, "labels")
    if scores.ndim != 2 or scores.shape[0] != y.shape[0] or y.size == 0:
        raise ValueError(f"outputs must be [N, C] with N = len(labels) > 0, got {scores.shape} and {y.shape}")
    if y.min() < 0 or y.max() >= scores.shape[1]:
        raise ValueError(f"labels outside [0, {scores.shape[1]})")
    if not np.all(np.isfinite(scores)):
        raise ValueError("outputs hold NaN or inf")
    lo, hi = math.log(T_MIN), math.log(T_MAX)
    res = minimize_scalar(lambda u: _mean_nll(scores, y, math.exp(u)), bounds=(lo, hi), method="bounded", options={"xatol": 1e-6})
    t = float(math.exp(res.x))
    return TemperatureFit(
        temperature=t,
        nll_before=_mean_nll(scores, y, 1.0),
        nll_after=_mean_nll(scores, y, t),
        n=int(y.size),
        at_bound=bool(min(res.x - lo, hi - res.x) < 1e-3),
    )


def calibration_scores(
    outputs: object, labels: object, temperature: float, outputs_are_probs: bool = False, n_bins: int = 15
) -> dict[str, float]:
    """NLL and ECE of one split before (``T = 1``) and after temperature scaling, as the reports use them
    (:func:`ferops.evaluation.metrics.nll` / ``expected_calibration_error``, ``n_bins`` equal bins)."""
    out = np.asarray(outputs)
    y = _as_labels(labels, "labels")
    before = calibrated_probs(out, 1.0, outputs_are_probs)
    after = calibrated_probs(out, temperature, outputs_are_probs)
    return {
        "n": float(y.size),
        "nll_before": nll(before, y),
        "nll_after": nll(after, y),
        "ece_before": expected_calibration_error(before, y, n_bins),
        "ece_after": expected_calibration_error(after, y, n_bins),
    }


def calibration_record(fit: TemperatureFit, splits: Mapping[str, Mapping[str, float]]) -> dict[str, object]:
    """``calibration.json``: the fit and the before/after scores per split (``{"val": ..., "test": ...}``)."""
    return {**fit.to_dict(), **{name: dict(scores) for name, scores in splits.items()}}
