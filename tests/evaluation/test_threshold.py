"""The unknown threshold (ferops.evaluation.threshold): the sweep, the two policies on a hand-made
set whose answer is known, the not-reached fallback and min_coverage."""

from __future__ import annotations

import numpy as np
import pytest

from ferops.evaluation.threshold import THRESHOLDS, accepted_scores, recommend_threshold, threshold_curve


def hand_made() -> tuple[np.ndarray, np.ndarray]:
    """10 rows, 2 classes, top probabilities 0.95 0.9 ... 0.5; the rows at 0.95, 0.9, 0.85, 0.8, 0.7
    are right, those at 0.75, 0.65, 0.6, 0.55, 0.5 wrong. Accepted accuracy by threshold:
    >= 0.80: 4/4 = 1.0; >= 0.75: 4/5 = 0.8; >= 0.70: 5/6; >= 0.65: 5/7; ... >= 0.50: 5/10."""
    conf = np.array([0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55, 0.5])
    right = np.array([1, 1, 1, 1, 0, 1, 0, 0, 0, 0], bool)
    probs = np.stack([conf, 1 - conf], axis=1)
    labels = np.where(right, 0, 1)
    return probs, labels


def test_curve_rows_and_monotone_coverage():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), 300)
    labels = rng.integers(0, 4, 300)
    curve = threshold_curve(probs, labels)
    assert [r["threshold"] for r in curve] == THRESHOLDS.tolist()
    cov = np.array([r["coverage"] for r in curve])
    assert cov[0] == 1.0 and np.all(np.diff(cov) <= 0)
    assert set(curve[0]) == {"threshold", "n", "n_accepted", "coverage", "accepted_accuracy", "accepted_macro_f1"}
    assert curve[-1]["n_accepted"] == 0 and curve[-1]["accepted_accuracy"] is None  # nothing reaches 1.0


def test_accepted_scores_on_the_hand_made_set():
    probs, labels = hand_made()
    s = accepted_scores(probs, labels, 0.75)
    assert s["n_accepted"] == 5 and s["coverage"] == 0.5 and s["accepted_accuracy"] == pytest.approx(0.8)
    assert accepted_scores(probs, labels, 0.0)["accepted_accuracy"] == pytest.approx(0.5)


def test_target_accuracy_picks_the_lowest_threshold_reaching_it():
    curve = threshold_curve(*hand_made())
    rec = recommend_threshold(curve, "target_accuracy", target_accuracy=0.8, min_coverage=0.0)
    assert rec["threshold"] == pytest.approx(0.66)  # accepts 0.95..0.7: 5/6 right
    assert rec["reached"] and rec["val"]["accepted_accuracy"] == pytest.approx(5 / 6) and rec["val"]["coverage"] == 0.6
    rec = recommend_threshold(curve, "target_accuracy", target_accuracy=0.84, min_coverage=0.0)
    assert rec["threshold"] == pytest.approx(0.76) and rec["val"]["accepted_accuracy"] == 1.0  # 5/6 and 4/5 fall short
    rec = recommend_threshold(curve, "target_accuracy", target_accuracy=0.7, min_coverage=0.0)
    assert rec["threshold"] == pytest.approx(0.61)  # 5/7


def test_target_accuracy_not_reached_falls_back_to_the_best_accuracy():
    probs, labels = hand_made()
    labels = 1 - labels  # now the confident rows are the wrong ones: the best accuracy is at threshold 0
    curve = threshold_curve(probs, labels)
    rec = recommend_threshold(curve, "target_accuracy", target_accuracy=0.9, min_coverage=0.0)
    assert not rec["reached"] and "not reached" in rec["rule"]
    best = max(r["accepted_accuracy"] for r in curve if r["accepted_accuracy"] is not None)
    assert rec["val"]["accepted_accuracy"] == best


def test_min_coverage_excludes_thresholds_that_accept_too_few():
    curve = threshold_curve(*hand_made())
    # accuracy 1.0 needs threshold > 0.75 (coverage 0.4); min_coverage 0.5 forbids it
    rec = recommend_threshold(curve, "target_accuracy", target_accuracy=1.0, min_coverage=0.5)
    assert not rec["reached"] and rec["val"]["coverage"] >= 0.5
    assert rec["threshold"] == pytest.approx(0.66) and rec["min_coverage"] == 0.5  # the best accuracy left: 5/6
    # min_coverage above any threshold's but the first: everything accepted
    rec = recommend_threshold(curve, "target_accuracy", target_accuracy=1.0, min_coverage=1.0)
    assert rec["threshold"] == 0.0


def test_target_coverage_picks_the_highest_threshold_keeping_it():
    curve = threshold_curve(*hand_made())
    rec = recommend_threshold(curve, "target_coverage", target_coverage=0.7)
    assert rec["threshold"] == pytest.approx(0.65) and rec["val"]["coverage"] == pytest.approx(0.7)
    assert rec["reached"] and rec["min_coverage"] is None
    assert recommend_threshold(curve, "target_coverage", target_coverage=1.0)["threshold"] == pytest.approx(0.5)


def test_bad_input_is_refused():
    curve = threshold_curve(*hand_made())
    with pytest.raises(ValueError, match="policy"):
        recommend_threshold(curve, "lowest")
    with pytest.raises(ValueError, match="empty"):
        recommend_threshold([])
    with pytest.raises(ValueError, match="target_accuracy"):
        recommend_threshold(curve, "target_accuracy", target_accuracy=1.5)
    with pytest.raises(ValueError, match="min_coverage"):
        recommend_threshold(curve, "target_accuracy", min_coverage=-0.1)
    with pytest.raises(ValueError, match="probabilities"):
        threshold_curve(np.array([[3.0, -1.0]]), np.array([0]))
    with pytest.raises(ValueError, match="rows"):
        threshold_curve(np.array([[0.5, 0.5]]), np.array([0, 1]))
