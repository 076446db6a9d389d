"""Rebuild the deployable model (preprocessing + network, EMA weights when trained with EMA)
from a Lightning checkpoint, without Hydra, the data or the training loop."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from torch import nn

from ferops.data.preprocess import Preprocess


class DeployableModel(nn.Sequential):
    """float [B, 1, 48, 48] raw pixels in [0, 255] -> logits [B, C]."""

    def __init__(self, preprocess: nn.Module, net: nn.Module):
        super().__init__()
        self.preprocess = preprocess
        self.net = net


def load_deployable(ckpt_path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    path = Path(ckpt_path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    meta = ckpt.get("ferops")
    if not meta:
        raise ValueError(f"{path}: not a ferops checkpoint (no 'ferops' metadata)")
    net = instantiate(meta["config"]["model"], num_classes=len(meta["class_names"]))
    pre = meta["preprocessing"]
    preprocess = Preprocess(input_size=pre["input_size"], in_chans=pre["in_chans"], mean=pre["mean"], std=pre["std"])
    state = ckpt["state_dict"]
    prefix = "ema.module." if any(k.startswith("ema.module.") for k in state) else "net."
    net.load_state_dict({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})
    preprocess.load_state_dict({k[len("preprocess.") :]: v for k, v in state.items() if k.startswith("preprocess.")})
    return DeployableModel(preprocess, net).eval(), meta
