"""`BatchAugment`: batched, on-device augmentation of float [B, 1, H, W] images in 0..255.

Each transform is drawn per sample with its own probability and strength:

- geometry, composed into ONE ``F.affine_grid`` + ``F.grid_sample`` call: horizontal flip (``flip_p``),
  random zoom / resized crop (``scale_p``, ``scale`` range, > 1 zooms in), shift (``shift_p``,
  ``max_shift`` as a fraction of the image size), rotation (``rotate_p``, ``max_rotate`` degrees);
- photometric: brightness (``brightness_p``, +-``brightness`` x 255) and contrast (``contrast_p``,
  factor 1 +- ``contrast`` around each image's mean), then clamped to 0..255;
- random erasing (``erase_p``): one rectangle of ``erase_area`` (fraction of the image) and aspect
  ``erase_ratio`` filled with a random grey level.

Runs wherever the batch is (CPU or GPU) with torch's global RNG (seeded by ``seed_everything``), or with
the ``generator`` passed to ``forward``. In eval mode (``module.eval()``) it is the identity; the
datamodule calls it only while the trainer is training.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class BatchAugment(nn.Module):
    def __init__(
        self,
        flip_p: float = 0.5,
        scale_p: float = 0.5,
        scale: Sequence[float] = (0.9, 1.15),
        shift_p: float = 0.5,
        max_shift: float = 0.08,
        rotate_p: float = 0.5,
        max_rotate: float = 10.0,
        brightness_p: float = 0.5,
        brightness: float = 0.15,
        contrast_p: float = 0.5,
        contrast: float = 0.25,
        erase_p: float = 0.25,
        erase_area: Sequence[float] = (0.02, 0.15),
        erase_ratio: Sequence[float] = (0.3, 3.3),
        padding_mode: str = "border",
    ):
        super().__init__()
        for name, p in dict(
            flip_p=flip_p,
            scale_p=scale_p,
            shift_p=shift_p,
            rotate_p=rotate_p,
            brightness_p=brightness_p,
            contrast_p=contrast_p,
            erase_p=erase_p,
        ).items():
            if not 0.0 <= float(p) <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {p}")
        self.flip_p, self.scale_p, self.shift_p, self.rotate_p = (
            float(flip_p),
            float(scale_p),
            float(shift_p),
            float(rotate_p),
        )
        self.scale = (float(scale[0]), float(scale[1]))
        self.max_shift, self.max_rotate = float(max_shift), float(max_rotate)
        self.brightness_p, self.brightness = float(brightness_p), float(brightness)
        self.contrast_p, self.contrast = float(contrast_p), float(contrast)
        self.erase_p = float(erase_p)
        self.erase_area = (float(erase_area[0]), float(erase_area[1]))
        self.erase_ratio = (float(erase_ratio[0]), float(erase_ratio[1]))
        self.padding_mode = padding_mode

    @property
    def has_geometry(self) -> bool:
        return any(p > 0 for p in (self.flip_p, self.scale_p, self.shift_p, self.rotate_p))

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if not self.training:
            return x
        if not x.is_floating_point():
            x = x.float()
        b, _, h, w = x.shape
        dev, dt = x.device, x.dtype

        def rand(*shape):
            return torch.rand(*shape, device=dev, dtype=dt, generator=generator)

        def coin(p):
            return rand(b) < p

        def uniform(lo, hi):
            return lo + (hi - lo) * rand(b)

        if self.has_geometry:
            flip = torch.where(coin(self.flip_p), -1.0, 1.0).to(dt)
            zoom = torch.where(coin(self.scale_p), uniform(*self.scale), torch.ones(b, device=dev, dtype=dt))
            angle = torch.where(
                coin(self.rotate_p), uniform(-self.max_rotate, self.max_rotate), torch.zeros(b, device=dev, dtype=dt)
            )
            angle = angle * (math.pi / 180.0)
            shifted = coin(self.shift_p)
            tx = torch.where(shifted, uniform(-2 * self.max_shift, 2 * self.max_shift), torch.zeros(b, device=dev, dtype=dt))
            ty = torch.where(shifted, uniform(-2 * self.max_shift, 2 * self.max_shift), torch.zeros(b, device=dev, dtype=dt))
            cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
            # output -> input sampling coordinates: rotate(angle) . scale(1/zoom) . flip, then shift
            theta = torch.stack([torch.stack([cos * flip, -sin, tx], dim=1), torch.stack([sin * flip, cos, ty], dim=1)], dim=1)
            grid = F.affine_grid(theta, [b, x.shape[1], h, w], align_corners=False)
            x = F.grid_sample(x, grid, mode="bilinear", padding_mode=self.padding_mode, align_corners=False)

        if self.brightness_p > 0 and self.brightness > 0:
            delta = torch.where(
                coin(self.brightness_p),
                uniform(-self.brightness, self.brightness) * 255.0,
                torch.zeros(b, device=dev, dtype=dt),
            )
            x = x + delta.view(b, 1, 1, 1)
        if self.contrast_p > 0 and self.contrast > 0:
            factor = torch.where(
                coin(self.contrast_p),
                uniform(1 - self.contrast, 1 + self.contrast),
                torch.ones(b, device=dev, dtype=dt),
            )
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            x = (x - mean) * factor.view(b, 1, 1, 1) + mean
        x = x.clamp(0.0, 255.0)

        if self.erase_p > 0:
            area = uniform(*self.erase_area) * (h * w)
            log_r = uniform(math.log(self.erase_ratio[0]), math.log(self.erase_ratio[1]))
            ratio = torch.exp(log_r)
            eh = torch.sqrt(area * ratio).clamp(1, h)
            ew = torch.sqrt(area / ratio).clamp(1, w)
            top = rand(b) * (h - eh)
            left = rand(b) * (w - ew)
            rows = torch.arange(h, device=dev, dtype=dt).view(1, h, 1)
            cols = torch.arange(w, device=dev, dtype=dt).view(1, 1, w)
            inside = (
                (rows >= top.view(b, 1, 1))
                & (rows < (top + eh).view(b, 1, 1))
                & (cols >= left.view(b, 1, 1))
                & (cols < (left + ew).view(b, 1, 1))
                & coin(self.erase_p).view(b, 1, 1)
            )
            fill = (rand(b) * 255.0).view(b, 1, 1, 1)
            x = torch.where(inside.unsqueeze(1), fill, x)
        return x

    def extra_repr(self) -> str:
        return (
            f"flip_p={self.flip_p}, scale_p={self.scale_p}, scale={self.scale}, shift_p={self.shift_p}, "
            f"max_shift={self.max_shift}, rotate_p={self.rotate_p}, max_rotate={self.max_rotate}, "
            f"brightness_p={self.brightness_p}, brightness={self.brightness}, contrast_p={self.contrast_p}, "
            f"contrast={self.contrast}, erase_p={self.erase_p}, erase_area={self.erase_area}"
        )
