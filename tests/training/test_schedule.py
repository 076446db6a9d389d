"""The per-step learning-rate schedule (torch's LinearLR then CosineAnnealingLR) has the shape of
the hand-written warm-up + cosine factor it replaced."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from ferops.training.module import warmup_cosine


def previous_factor(step: int, total: int, warmup: int, min_lr_ratio: float) -> float:
    """The LambdaLR factor ferops used before."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def lr_trace(total: int, warmup: int, min_lr_ratio: float, lrs: list[float]) -> list[list[float]]:
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in lrs]
    opt = torch.optim.AdamW([{"params": [p], "lr": lr} for p, lr in zip(params, lrs, strict=True)])
    scheduler = warmup_cosine(opt, total, warmup, min_lr_ratio)
    trace = []
    for _ in range(total):
        trace.append([g["lr"] for g in opt.param_groups])
        opt.step()
        scheduler.step()
    return trace


@pytest.mark.parametrize("total,warmup,min_lr_ratio", [(60, 7, 0.01), (20, 1, 0.01), (9, 3, 0.0), (4, 4, 0.05), (1, 1, 0.01)])
def test_same_schedule_as_the_previous_factor(total, warmup, min_lr_ratio):
    base = 3e-3
    for step, (backbone, head) in enumerate(lr_trace(total, warmup, min_lr_ratio, [base, base])):
        expected = base * previous_factor(step, total, warmup, min_lr_ratio)
        assert backbone == pytest.approx(expected, rel=1e-6), step
        assert head == pytest.approx(expected, rel=1e-6), step


def test_discriminative_lr_groups_keep_their_warmup_and_decay_monotonically():
    """backbone_lr_mult < 1: the backbone follows the previous schedule exactly; the head shares
    its floor (torch's eta_min is one value), so it decays to a lower end and never rises."""
    total, warmup, ratio, base = 50, 5, 0.01, 3e-3
    trace = lr_trace(total, warmup, ratio, [0.1 * base, base])
    for step, (backbone, head) in enumerate(trace):
        assert backbone == pytest.approx(0.1 * base * previous_factor(step, total, warmup, ratio), rel=1e-6), step
        if step < warmup:
            assert head == pytest.approx(base * previous_factor(step, total, warmup, ratio), rel=1e-6), step
    heads = [h for _, h in trace[warmup:]]
    assert all(a >= b for a, b in itertools.pairwise(heads))
    assert heads[-1] >= ratio * 0.1 * base
