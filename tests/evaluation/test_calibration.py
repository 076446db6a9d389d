"""Temperature scaling (ferops.evaluation.calibration): the fit recovers a known temperature, keeps
every label, lowers NLL and ECE on an over-confident set, reads probabilities as well as logits."""

from __future__ import annotations

import numpy as np
import pytest

from ferops.evaluation.calibration import T_MAX, calibration_record, calibration_scores, fit_temperature
from ferops.evaluation.metrics import expected_calibration_error, nll
from ferops.runtime.bundle import calibrated_probs, softmax


def synthetic(t_true: float, n: int = 6000, c: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits ``z`` and labels drawn from ``softmax(z / t_true)``: the calibrated model is ``z / t_true``."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 3.0, (n, c))
    p = softmax(z / t_true).astype(np.float64)
    p /= p.sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(c, p=row) for row in p])
    return z, labels


@pytest.mark.parametrize("t_true", [0.5, 2.0])
def test_fit_recovers_a_known_temperature(t_true):
    z, y = synthetic(t_true)
    fit = fit_temperature(z, y)
    assert abs(fit.temperature - t_true) < 0.1 * t_true, fit
    assert not fit.at_bound and fit.n == len(y)
    assert fit.nll_after <= fit.nll_before
    assert fit.nll_before == pytest.approx(nll(softmax(z), y), rel=1e-5)  # the objective is the NLL


def test_scaling_keeps_labels_and_lowers_nll_and_ece_of_an_over_confident_set():
    z, y = synthetic(2.5, seed=1)  # z is 2.5x too sharp: over-confident at T = 1
    fit = fit_temperature(z, y)
    assert fit.temperature > 1.5
    before, after = calibrated_probs(z, 1.0), calibrated_probs(z, fit.temperature)
    np.testing.assert_array_equal(before.argmax(1), after.argmax(1))
    scores = calibration_scores(z, y, fit.temperature)
    assert scores["nll_after"] < scores["nll_before"]
    assert scores["ece_after"] < 0.5 * scores["ece_before"]
    assert scores["nll_before"] == pytest.approx(nll(before, y))
    assert scores["ece_after"] == pytest.approx(expected_calibration_error(after, y))
    # T = 1 changes nothing
    one = calibration_scores(z, y, 1.0)
    assert one["nll_after"] == one["nll_before"] and one["ece_after"] == one["ece_before"]


def test_probabilities_give_the_same_temperature_as_logits():
    z, y = synthetic(2.0, seed=2)
    from_logits = fit_temperature(z, y)
    from_probs = fit_temperature(softmax(z), y, outputs_are_probs=True)
    assert from_probs.temperature == pytest.approx(from_logits.temperature, rel=1e-3)
    np.testing.assert_allclose(
        calibrated_probs(softmax(z), from_logits.temperature, outputs_are_probs=True),
        calibrated_probs(z, from_logits.temperature),
        atol=1e-5,
    )


def test_a_separable_set_stops_at_the_search_bound():
    z = np.array([[10.0, -10.0], [-10.0, 10.0]] * 20)
    y = np.array([0, 1] * 20)
    fit = fit_temperature(z, y)  # NLL falls forever as T -> 0
    assert fit.at_bound and fit.temperature < 0.1


def test_record_holds_fit_and_splits():
    z, y = synthetic(2.0, n=500, seed=3)
    fit = fit_temperature(z, y)
    record = calibration_record(fit, {"val": calibration_scores(z, y, fit.temperature)})
    assert record["temperature"] == fit.temperature and set(record["val"]) >= {"nll_before", "ece_after", "n"}
    assert "method" in record


@pytest.mark.parametrize(
    ("outputs", "labels", "match"),
    [
        (np.zeros((3, 4)), np.zeros(2, int), "N = len"),
        (np.zeros(4), np.zeros(4, int), r"\[N, C\]"),
        (np.zeros((0, 4)), np.zeros(0, int), "N = len"),
        (np.zeros((2, 4)), np.array([0, 4]), r"outside \[0, 4\)"),
        (np.array([[0.0, np.nan], [1.0, 0.0]]), np.array([0, 1]), "NaN"),
        (np.zeros((2, 3)), np.array([0.5, 1.0]), "integer class ids"),
    ],
)
def test_bad_input_is_refused(outputs, labels, match):
    with pytest.raises(ValueError, match=match):
        fit_temperature(outputs, labels)


@pytest.mark.parametrize("t", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_temperature_is_refused(t):
    with pytest.raises(ValueError, match="temperature"):
        calibrated_probs(np.zeros((1, 3)), t)


def test_search_range_is_documented():
    assert T_MAX > 10
