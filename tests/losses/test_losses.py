"""Each loss against a value computed by hand from the formula."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ferops.losses import (
    CrossEntropyLoss,
    FocalLoss,
    LabelSmoothingLoss,
    SoftTargetCrossEntropy,
    class_weights,
)

LOGITS = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 1.0]])
LABELS = torch.tensor([0, 2])


def _log_softmax(row):
    z = [math.exp(v) for v in row]
    return [math.log(v / sum(z)) for v in z]


LOGP = [_log_softmax(r) for r in LOGITS.tolist()]


def test_ce_matches_hand_value_and_torch():
    expected = -(LOGP[0][0] + LOGP[1][2]) / 2
    got = CrossEntropyLoss()(LOGITS, LABELS).item()
    assert got == pytest.approx(expected, rel=1e-6)
    assert got == pytest.approx(F.cross_entropy(LOGITS, LABELS).item(), rel=1e-6)


def test_label_smoothing_hand_value():
    eps, k = 0.1, 3
    expected = 0.0
    for i, y in enumerate(LABELS.tolist()):
        t = [eps / k] * k
        t[y] += 1 - eps
        expected -= sum(tc * lp for tc, lp in zip(t, LOGP[i]))
    expected /= 2
    assert LabelSmoothingLoss(smoothing=eps)(LOGITS, LABELS).item() == pytest.approx(expected, rel=1e-6)


def test_focal_hand_value_with_scalar_alpha():
    gamma, alpha = 2.0, 0.25
    expected = 0.0
    for i, y in enumerate(LABELS.tolist()):
        p = math.exp(LOGP[i][y])
        expected -= alpha * (1 - p) ** gamma * LOGP[i][y]
    expected /= 2
    loss = FocalLoss(gamma=gamma, alpha=alpha)
    assert loss(LOGITS, LABELS).item() == pytest.approx(expected, rel=1e-6)


def test_focal_per_class_alpha_and_gamma_zero_is_weighted_ce():
    loss = FocalLoss(gamma=0.0, alpha=[1.0, 1.0, 3.0])
    loss.set_class_counts([5, 5, 5])
    expected = -(1.0 * LOGP[0][0] + 3.0 * LOGP[1][2]) / 2
    assert loss(LOGITS, LABELS).item() == pytest.approx(expected, rel=1e-6)


def test_soft_target_ce_hand_value():
    target = torch.tensor([[0.7, 0.3, 0.0], [0.0, 0.5, 0.5]])
    expected = -((0.7 * LOGP[0][0] + 0.3 * LOGP[0][1]) + (0.5 * LOGP[1][1] + 0.5 * LOGP[1][2])) / 2
    assert SoftTargetCrossEntropy()(LOGITS, target).item() == pytest.approx(expected, rel=1e-6)


def test_class_weights_modes():
    counts = [100, 10, 50]
    assert class_weights(counts, "none") is None
    inv = class_weights(counts, "inverse", power=1.0)
    raw = np.array([1 / 100, 1 / 10, 1 / 50])
    np.testing.assert_allclose(inv, raw / raw.mean(), rtol=1e-6)
    eff = class_weights(counts, "effective", beta=0.9)
    raw = np.array([(1 - 0.9) / (1 - 0.9**n) for n in counts])
    np.testing.assert_allclose(eff, raw / raw.mean(), rtol=1e-6)
    assert eff.mean() == pytest.approx(1.0)


def test_weighted_ce_applies_weights():
    loss = CrossEntropyLoss(class_weighting="inverse")
    loss.set_class_counts([1, 1, 3])  # weights ∝ [1, 1, 1/3] -> normalised by mean 7/9
    w = np.array([1, 1, 1 / 3]) / (7 / 9)
    expected = -(w[0] * LOGP[0][0] + w[2] * LOGP[1][2]) / 2
    assert loss(LOGITS, LABELS).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: class_weights([3, 0], "inverse"), "every class needs training samples"),
        (lambda: class_weights([3, 4], "bogus"), "unknown mode"),
        (lambda: LabelSmoothingLoss(smoothing=1.5), "label_smoothing"),
        (lambda: FocalLoss(alpha=[1.0, 2.0]).set_class_counts([1, 2, 3]), "alpha has 2 values for 3 classes"),
    ],
)
def test_bad_loss_settings_are_named(make, message):
    with pytest.raises(ValueError, match=message):
        make()
