"""`Preprocess`: the model's first layer, raw 0..255 grayscale pixels -> normalised network input.

    x: float [B, 1, 48, 48] in 0..255
    -> bilinear resize to input_size (align_corners=False, no antialias) when input_size != 48
    -> repeat to in_chans channels (1 or 3)
    -> (x / 255 - mean) / std   (mean/std on the 0..1 scale, one value or one per channel)

It is part of the model, so the exported model takes raw pixels; `FERDataModule.preprocessing` records
the same fields (`to_dict` / `from_dict`) so export and runtime can check or reproduce it exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ferops.data.constants import IMAGE_SIZE


def _per_channel(values: float | Sequence[float], in_chans: int, what: str) -> list[float]:
    vals = [float(values)] if isinstance(values, (int, float)) else [float(v) for v in values]
    if len(vals) == 1:
        vals = vals * in_chans
    if len(vals) != in_chans:
        raise ValueError(f"{what} needs 1 or {in_chans} values, got {vals}")
    return vals


class Preprocess(nn.Module):
    """Resize, channel repeat and normalisation of float [B, 1, 48, 48] 0..255 images."""

    def __init__(
        self,
        input_size: int = IMAGE_SIZE,
        in_chans: int = 1,
        mean: float | Sequence[float] = (0.5,),
        std: float | Sequence[float] = (0.25,),
    ):
        super().__init__()
        if in_chans not in (1, 3):
            raise ValueError(f"in_chans must be 1 or 3, got {in_chans}")
        self.input_size = int(input_size)
        self.in_chans = int(in_chans)
        mean_l = _per_channel(mean, self.in_chans, "mean")
        std_l = _per_channel(std, self.in_chans, "std")
        if min(std_l) <= 0:
            raise ValueError(f"std must be positive, got {std_l}")
        # (x / 255 - mean) / std == x * scale + shift
        scale = torch.tensor([1.0 / (255.0 * s) for s in std_l]).view(1, -1, 1, 1)
        shift = torch.tensor([-m / s for m, s in zip(mean_l, std_l)]).view(1, -1, 1, 1)
        self.register_buffer("scale", scale, persistent=False)
        self.register_buffer("shift", shift, persistent=False)
        self.mean, self.std = mean_l, std_l

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        if self.in_chans == 3 and x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        return x * self.scale + self.shift

    def to_dict(self) -> dict:
        return preprocessing_dict(self.input_size, self.in_chans, self.mean, self.std)

    @classmethod
    def from_dict(cls, d: Mapping) -> Preprocess:
        return cls(input_size=d["input_size"], in_chans=d["in_chans"], mean=d["mean"], std=d["std"])

    def extra_repr(self) -> str:
        return f"input_size={self.input_size}, in_chans={self.in_chans}, mean={self.mean}, std={self.std}"


def preprocessing_dict(input_size: int, in_chans: int, mean: Sequence[float], std: Sequence[float]) -> dict:
    """The record every run keeps (see docs/architecture.md) so export can reproduce `Preprocess`."""
    return {
        "input_size": int(input_size),
        "in_chans": int(in_chans),
        "mean": _per_channel(mean, int(in_chans), "mean"),
        "std": _per_channel(std, int(in_chans), "std"),
        "input_range": [0, 255],
        "layout": "NCHW gray",
        "source_size": IMAGE_SIZE,
        "resize": "bilinear, align_corners=False" if int(input_size) != IMAGE_SIZE else "none",
        "normalize": "(x / 255 - mean) / std",
    }
