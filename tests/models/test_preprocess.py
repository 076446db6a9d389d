"""Preprocess: the model's first layer (raw 0..255 pixels -> normalised input) and its record."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ferops.models.preprocess import Preprocess


def test_preprocess_64_three_channels():
    pre = Preprocess(input_size=64, in_chans=3, mean=[0.5], std=[0.25])
    x = torch.rand(2, 1, 48, 48) * 255
    y = pre(x)
    assert y.shape == (2, 3, 64, 64)
    want = (F.interpolate(x / 255, size=(64, 64), mode="bilinear", align_corners=False) - 0.5) / 0.25
    for c in range(3):
        torch.testing.assert_close(y[:, c : c + 1], want, atol=1e-5, rtol=1e-5)
    flat = pre(torch.full((1, 1, 48, 48), 127.5))
    torch.testing.assert_close(flat, torch.zeros(1, 3, 64, 64), atol=1e-5, rtol=0)
    d = pre.to_dict()
    assert d["mean"] == [0.5] * 3 and d["in_chans"] == 3 and d["input_size"] == 64
    torch.testing.assert_close(Preprocess.from_dict(d)(x), y)
    assert Preprocess()(x).shape == (2, 1, 48, 48)
    with pytest.raises(ValueError):
        Preprocess(in_chans=2)
