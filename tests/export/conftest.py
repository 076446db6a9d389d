"""Fixtures for the export tests: tiny deployable models and one real export per session.

The model contract (docs/architecture.md): float [B, 1, 48, 48] raw pixels 0..255 -> logits [B, C],
normalisation inside the module. `exported` runs the whole chain (ONNX -> onnx2tf -> int8 TFLite ->
EdgeTPU check -> bundle) once for the session on a tiny CNN trained for a few seconds on
procedural images, so the parity thresholds are checked on a model that has real decision margins.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

CLASS_NAMES = ["top", "bottom", "left"]


class Normalize(nn.Module):
    """Stand-in for ferops.models.preprocess.Preprocess: raw 0..255 -> [resize] -> [repeat to 3 channels]
    -> (x/255 - mean) / std, written the way timm-backbone preprocessing is (F.interpolate, Tensor.repeat)."""

    def __init__(self, mean: float = 0.5, std: float = 0.25, in_chans: int = 1, input_size: int = 48):
        super().__init__()
        self.in_chans, self.input_size = in_chans, input_size
        self.register_buffer("mean", torch.tensor(mean))
        self.register_buffer("std", torch.tensor(std))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.input_size:
            x = nn.functional.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        if self.in_chans == 3:
            x = x.repeat(1, 3, 1, 1)
        return (x / 255.0 - self.mean) / self.std


class TinyNet(nn.Module):
    """conv-bn-act-pool x2 -> global average pool -> linear, preprocessing inside."""

    def __init__(self, num_classes: int = 3, act: type[nn.Module] = nn.ReLU, in_chans: int = 1, input_size: int = 48):
        super().__init__()
        self.preprocess = Normalize(in_chans=in_chans, input_size=input_size)
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            act(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.BatchNorm2d(16),
            act(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Linear(16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(self.preprocess(x)).mean(dim=(2, 3)))


def make_images(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 [n, 48, 48] procedural images: class 0 bright top half, 1 bright bottom half, 2 bright left half."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    img = rng.normal(70, 25, (n, 48, 48))
    bright = rng.uniform(80, 140, n)
    regions = [np.s_[:24, :], np.s_[24:, :], np.s_[:, :24]]
    for i in range(n):
        img[i][regions[labels[i]]] += bright[i]
    return np.clip(img, 0, 255).astype(np.uint8), labels.astype(np.int64)


def train_tiny(model: nn.Module, images: np.ndarray, labels: np.ndarray, steps: int = 80, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x = torch.from_numpy(images.astype(np.float32)[:, None])
    y = torch.from_numpy(labels)
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(y), (64,), generator=g)
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def tiny_meta(name: str = "tiny_cnn") -> dict:
    return {
        "class_names": list(CLASS_NAMES),
        "preprocessing": {
            "input_size": 48,
            "in_chans": 1,
            "mean": [0.5],
            "std": [0.25],
            "input_range": [0, 255],
            "layout": "NCHW gray",
        },
        "model_name": name,
        "config": {},
    }


@pytest.fixture(scope="session")
def tiny_net_cls() -> type[TinyNet]:
    return TinyNet


@pytest.fixture(scope="session")
def tiny_data() -> dict[str, np.ndarray]:
    train_x, train_y = make_images(480, seed=1)
    eval_x, eval_y = make_images(160, seed=2)
    return {"train_x": train_x, "train_y": train_y, "eval_x": eval_x, "eval_y": eval_y}


@pytest.fixture(scope="session")
def tiny_model(tiny_data) -> nn.Module:
    torch.manual_seed(0)
    return train_tiny(TinyNet(), tiny_data["train_x"], tiny_data["train_y"])


FAST_CFG = {
    "n_calibration": 96,
    "n_latency_runs": 20,
    "n_latency_warmup": 3,
    "progress": False,
    "edgetpu_compiler": "off",
}


def _export(out, tiny_model, tiny_data, **cfg) -> dict:
    from ferops.export import run_export

    report = run_export(
        tiny_model,
        tiny_meta(),
        tiny_data["train_x"],
        tiny_data["train_y"],
        tiny_data["eval_x"],
        tiny_data["eval_y"],
        out,
        {**FAST_CFG, **cfg},
        source={"run_id": "test-run-123", "checkpoint": "epoch=1.ckpt"},
    )
    return {"report": report, "out_dir": out, "model": tiny_model, "data": tiny_data}


@pytest.fixture(scope="session")
def exported(tmp_path_factory, tiny_model, tiny_data) -> dict:
    """The whole export chain, once per session: {"report", "out_dir", "model", "data"}."""
    return _export(tmp_path_factory.mktemp("export"), tiny_model, tiny_data)


@pytest.fixture(scope="session")
def exported_hflip(tmp_path_factory, tiny_model, tiny_data) -> dict:
    """The same chain with ``export.tta=hflip`` (the tiny classes are not mirror-symmetric: "left"
    mirrored is not "left", so the two-view scores differ from the single view's)."""
    return _export(tmp_path_factory.mktemp("export-hflip"), tiny_model, tiny_data, tta="hflip", gates={"enforce": False})
