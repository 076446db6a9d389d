"""Metrics against values worked out by hand (see the comments), plus edge cases."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest

from ferops.evaluation import metrics as M

# 3-class example used throughout.
#   y_true = 0 0 0 0 1 1 2 2
#   y_pred = 0 0 0 1 1 0 2 0
# confusion [true, pred]:   pred0 pred1 pred2 | support
#   true0                     3     1     0   |   4
#   true1                     1     1     0   |   2
#   true2                     1     0     1   |   2
#   predicted                 5     2     1
# precision = 3/5, 1/2, 1/1 ; recall = 3/4, 1/2, 1/2
# F1 = 2tp/(2tp+fp+fn) = 6/9, 2/4, 2/3 ; macro F1 = (2/3 + 1/2 + 2/3)/3 = 11/18
# accuracy = 5/8 ; balanced accuracy = (3/4 + 1/2 + 1/2)/3 = 7/12
# weighted F1 = (4*2/3 + 2*1/2 + 2*2/3)/8 = 5/8
Y_TRUE = np.array([0, 0, 0, 0, 1, 1, 2, 2])
Y_PRED = np.array([0, 0, 0, 1, 1, 0, 2, 0])


def test_confusion_matrix_rows_are_true_class() -> None:
    cm = M.confusion_matrix(Y_TRUE, Y_PRED, 3)
    np.testing.assert_array_equal(cm, [[3, 1, 0], [1, 1, 0], [1, 0, 1]])
    assert cm.dtype == np.int64


def test_accuracy_and_per_class_by_hand() -> None:
    assert M.accuracy(Y_TRUE, Y_PRED) == pytest.approx(5 / 8)
    pc = M.per_class_metrics(Y_TRUE, Y_PRED, 3)
    np.testing.assert_allclose(pc["precision"], [3 / 5, 1 / 2, 1.0])
    np.testing.assert_allclose(pc["recall"], [3 / 4, 1 / 2, 1 / 2])
    np.testing.assert_allclose(pc["f1"], [2 / 3, 1 / 2, 2 / 3])
    np.testing.assert_array_equal(pc["support"], [4, 2, 2])
    np.testing.assert_array_equal(pc["predicted"], [5, 2, 1])


def test_macro_f1_and_balanced_accuracy_by_hand() -> None:
    assert M.macro_f1(Y_TRUE, Y_PRED, 3) == pytest.approx(11 / 18)
    assert M.balanced_accuracy(Y_TRUE, Y_PRED, 3) == pytest.approx(7 / 12)


def test_class_never_predicted_gives_zero_not_nan() -> None:
    # class 2 has one sample and is never predicted: precision 0/0 -> 0, recall 0/1 = 0, F1 0.
    # class 1: tp 1, fp 1 -> precision 1/2, recall 1/1, F1 2/3; macro = (1 + 2/3 + 0)/3 = 5/9
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no divide-by-zero RuntimeWarning either
        pc = M.per_class_metrics([0, 1, 2], [0, 1, 1], 3)
        macro = M.macro_f1([0, 1, 2], [0, 1, 1], 3)
    np.testing.assert_allclose(pc["precision"], [1.0, 0.5, 0.0])
    np.testing.assert_allclose(pc["recall"], [1.0, 1.0, 0.0])
    np.testing.assert_allclose(pc["f1"], [1.0, 2 / 3, 0.0])
    assert macro == pytest.approx(5 / 9)


def test_class_absent_from_both_is_left_out_of_macro() -> None:
    # a 4th class with no samples and no predictions has no defined F1: it is reported as 0
    # but does not drag the macro average down (sklearn labels=None / torchmetrics convention).
    pc = M.per_class_metrics([0, 1, 2], [0, 1, 1], 4)
    assert pc["f1"][3] == 0.0 and pc["support"][3] == 0
    assert M.macro_f1([0, 1, 2], [0, 1, 1], 4) == pytest.approx(5 / 9)


def test_predicted_class_without_support_stays_in_macro() -> None:
    # class 1 has no samples but is predicted once: F1 0, and it counts: macro = (2/3 + 0)/2
    assert M.macro_f1([0, 0], [0, 1], 2) == pytest.approx(1 / 3)
    # balanced accuracy only averages classes with support
    assert M.balanced_accuracy([0, 0], [0, 1], 2) == pytest.approx(1 / 2)


def test_macro_f1_matches_sklearn_on_random_labels() -> None:
    skm = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    for _ in range(5):
        t = rng.integers(0, 6, 200)
        p = np.where(rng.random(200) < 0.5, t, rng.integers(0, 5, 200))  # class 5 never predicted
        assert M.macro_f1(t, p, 7) == pytest.approx(skm.f1_score(t, p, average="macro", zero_division=0))
        assert M.balanced_accuracy(t, p, 7) == pytest.approx(skm.balanced_accuracy_score(t, p))
        assert M.weighted_f1(t, p, 7) == pytest.approx(skm.f1_score(t, p, average="weighted", zero_division=0))
        np.testing.assert_array_equal(M.confusion_matrix(t, p, 7), skm.confusion_matrix(t, p, labels=range(7)))


def test_label_validation() -> None:
    with pytest.raises(ValueError, match="outside"):
        M.confusion_matrix([0, 3], [0, 1], 3)
    with pytest.raises(ValueError, match="length"):
        M.accuracy([0, 1], [0])
    with pytest.raises(ValueError, match="no samples"):
        M.accuracy([], [])


# ----------------------------------------------------------------------------- NLL


def test_nll_by_hand() -> None:
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.25, 0.5, 0.25]])
    y = np.array([0, 2, 0])
    expected = -(math.log(0.7) + math.log(0.8) + math.log(0.25)) / 3  # = 0.655371...
    assert M.nll(probs, y) == pytest.approx(expected)
    assert M.nll(probs, y) == pytest.approx(0.6553710, abs=1e-6)


def test_nll_clips_zero_probability() -> None:
    probs = np.array([[1.0, 0.0], [0.0, 1.0]])
    # sample 0: p(true)=0 -> clipped to 1e-12 -> 27.631; sample 1: -log 1 = 0
    assert M.nll(probs, [1, 1]) == pytest.approx(-math.log(1e-12) / 2)
    assert M.nll(probs, [1, 1], eps=1e-6) == pytest.approx(-math.log(1e-6) / 2)


def test_logits_are_refused() -> None:
    with pytest.raises(ValueError, match="softmax"):
        M.nll(np.array([[2.0, -1.0], [0.5, 3.0]]), [0, 1])
    probs = M.softmax(np.array([[2.0, -1.0], [0.5, 3.0]]))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    assert M.nll(probs, [0, 1]) > 0


# ----------------------------------------------------------------------------- ECE / reliability

# 4 samples, 2 classes, 5 bins (0,.2] (.2,.4] (.4,.6] (.6,.8] (.8,1]:
#   probs        y  top conf  correct  bin
#   .90 .10      0    .90       1       4
#   .70 .30      1    .70       0       3
#   .35 .65      1    .65       1       3
#   .55 .45      1    .55       0       2
# bin 4: n=1 conf .9   acc 1   gap .1
# bin 3: n=2 conf .675 acc .5  gap .175
# bin 2: n=1 conf .55  acc 0   gap .55
# ECE = (1*.1 + 2*.175 + 1*.55) / 4 = 0.25
ECE_PROBS = np.array([[0.9, 0.1], [0.7, 0.3], [0.35, 0.65], [0.55, 0.45]])
ECE_Y = np.array([0, 1, 1, 1])


def test_ece_by_hand() -> None:
    assert M.expected_calibration_error(ECE_PROBS, ECE_Y, n_bins=5) == pytest.approx(0.25)


def test_reliability_bins_by_hand() -> None:
    bins = M.reliability_bins(ECE_PROBS, ECE_Y, n_bins=5)
    np.testing.assert_array_equal(bins.count, [0, 0, 1, 2, 1])
    np.testing.assert_allclose(bins.lower, [0, 0.2, 0.4, 0.6, 0.8])
    np.testing.assert_allclose(bins.upper, [0.2, 0.4, 0.6, 0.8, 1.0])
    np.testing.assert_allclose(bins.confidence[2:], [0.55, 0.675, 0.9])
    np.testing.assert_allclose(bins.accuracy[2:], [0.0, 0.5, 1.0])
    assert np.isnan(bins.confidence[:2]).all() and np.isnan(bins.accuracy[:2]).all()
    rows = bins.rows()
    assert rows[0] == {"bin": 0, "bin_lower": 0.0, "bin_upper": 0.2, "confidence": None, "accuracy": None, "count": 0}
    assert rows[3]["confidence"] == pytest.approx(0.675) and rows[3]["count"] == 2
    json.dumps(rows, allow_nan=False)  # JSON-ready


def test_ece_bins_are_right_closed() -> None:
    # confidence exactly on an edge goes to the lower bin: 0.6 -> (0.4, 0.6], 0.8 -> (0.6, 0.8]
    probs = np.array([[0.6, 0.2, 0.2], [0.8, 0.1, 0.1]])
    bins = M.reliability_bins(probs, [0, 1], n_bins=5)
    np.testing.assert_array_equal(bins.count, [0, 0, 1, 1, 0])
    # (0.6 -> correct: gap .4) + (0.8 -> wrong: gap .8) over 2 samples
    assert bins.ece == pytest.approx((0.4 + 0.8) / 2)


def test_ece_one_bin_is_confidence_minus_accuracy() -> None:
    # one bin: |mean acc - mean conf| = |0.5 - 0.7|
    assert M.expected_calibration_error(ECE_PROBS, ECE_Y, n_bins=1) == pytest.approx(abs(0.5 - 0.7))


def test_ece_perfectly_calibrated_is_zero() -> None:
    # 4 samples at confidence 0.75, 3 right: acc = conf in the one occupied bin
    probs = np.tile([0.75, 0.25], (4, 1))
    assert M.expected_calibration_error(probs, [0, 0, 0, 1]) == pytest.approx(0.0)


# ----------------------------------------------------------------------------- flat dict


def _one_hot_probs(pred: np.ndarray, n: int, conf: float = 0.8) -> np.ndarray:
    p = np.full((pred.size, n), (1 - conf) / (n - 1))
    p[np.arange(pred.size), pred] = conf
    return p


def test_classification_metrics_flat_dict() -> None:
    names = ["angry", "happy", "sad"]
    probs = _one_hot_probs(Y_PRED, 3)
    m = M.classification_metrics(probs, Y_TRUE, names)
    expected_keys = ["n_samples", "accuracy", "balanced_accuracy", "macro_f1", "weighted_f1", "nll", "ece"]
    for n in names:
        expected_keys += [f"precision/{n}", f"recall/{n}", f"f1/{n}", f"support/{n}"]
    assert list(m) == expected_keys
    assert all(type(v) is float for v in m.values())
    json.dumps(m, allow_nan=False)
    assert m["n_samples"] == 8.0
    assert m["accuracy"] == pytest.approx(5 / 8)
    assert m["balanced_accuracy"] == pytest.approx(7 / 12)
    assert m["macro_f1"] == pytest.approx(11 / 18)
    assert m["weighted_f1"] == pytest.approx(5 / 8)
    assert m["precision/angry"] == pytest.approx(3 / 5)
    assert m["recall/angry"] == pytest.approx(3 / 4)
    assert m["precision/sad"] == pytest.approx(1.0)
    assert m["recall/sad"] == pytest.approx(1 / 2)
    assert m["support/happy"] == 2.0
    # every prediction at confidence 0.8, 5/8 right: NLL = -(5 ln .8 + 3 ln .1)/8, ECE = |0.625 - 0.8|
    assert m["nll"] == pytest.approx(-(5 * math.log(0.8) + 3 * math.log(0.1)) / 8)
    assert m["ece"] == pytest.approx(0.175)


def test_classification_metrics_edge_class_and_key_safety() -> None:
    names = ["angry", "happy face!", "never seen"]
    probs = _one_hot_probs(np.array([0, 1, 1]), 3)
    m = M.classification_metrics(probs, [0, 1, 0], names)
    assert "f1/happy face_" in m  # "!" is not allowed in an MLflow metric name
    assert m["f1/never seen"] == 0.0 and m["support/never seen"] == 0.0
    assert all(math.isfinite(v) for v in m.values())
    with pytest.raises(ValueError, match="class names"):
        M.classification_metrics(probs, [0, 1, 0], ["a", "b"])
    with pytest.raises(ValueError, match="collide"):
        M.classification_metrics(probs, [0, 1, 0], ["a?", "a!", "b"])


def test_add_prefix() -> None:
    assert M.add_prefix({"accuracy": 0.5, "f1/sad": 0.1}, "test/") == {"test/accuracy": 0.5, "test/f1/sad": 0.1}
