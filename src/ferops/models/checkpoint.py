"""Rebuild the deployable model (preprocessing + network, EMA weights when trained with EMA)
from a Lightning checkpoint, without Hydra, the data or the training loop.

A checkpoint may come from someone else (``python -m ferops.evaluate their.ckpt``, one pulled
from the registry), so loading it must not run code it carries:

- it is unpickled with ``torch.load(weights_only=True)``: tensors, containers and plain values,
  plus the few extra globals in `SAFE_GLOBALS`; anything else (a pickled callable, a ``__reduce__``
  payload) is refused with `UnsafeCheckpointError` before it can run;
- every ``_target_`` of the stored model config must name a class or function under
  `ALLOWED_TARGET_PREFIXES` (checked on the name and on the object it resolves to) before Hydra
  instantiates anything;
- the network is rebuilt without pretrained weights (``pretrained=False``, ``pretrained_path=None``):
  the weights come from the checkpoint's state_dict, so nothing is downloaded and no training-time
  file has to exist on this machine.
"""

from __future__ import annotations

import inspect
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from torch import nn

from ferops.models.preprocess import Preprocess

__all__ = ["ALLOWED_TARGET_PREFIXES", "SAFE_GLOBALS", "DeployableModel", "UnsafeCheckpointError", "load_deployable"]

# Modules whose classes / functions a checkpoint's model config may instantiate.
ALLOWED_TARGET_PREFIXES = ("ferops.", "timm.", "torch.nn.")

# Globals a ferops Lightning checkpoint holds beyond what weights_only allows by default
# (tensors, dicts, lists, tuples, sets, str / int / float / bool / None, OrderedDict, ...).
# Lightning saves plain dicts; nothing else has been needed (see tests/training/test_checkpoint_safety.py).
SAFE_GLOBALS: list[Any] = []


class UnsafeCheckpointError(ValueError):
    """The checkpoint holds something that loading it would execute, or a target outside the allow-list."""


class DeployableModel(nn.Sequential):
    """float [B, 1, 48, 48] raw pixels in [0, 255] -> logits [B, C]."""

    def __init__(self, preprocess: nn.Module, net: nn.Module):
        super().__init__()
        self.preprocess = preprocess
        self.net = net


def _load(path: Path) -> dict[str, Any]:
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = _unsafe_globals(path)
        detail = (
            f"globals {', '.join(found)}"
            if found
            else next((ln.strip() for ln in str(err).splitlines() if "Unsupported" in ln or "GLOBAL" in ln), "see the cause")
        )
        raise UnsafeCheckpointError(
            f"{path}: refusing to load this checkpoint: besides tensors and plain values it pickles objects "
            f"that could run code when loaded ({detail}); nothing was executed"
        ) from err
    if not isinstance(ckpt, Mapping):
        raise ValueError(f"{path}: not a Lightning checkpoint (a {type(ckpt).__name__}, not a dict)")
    return dict(ckpt)


def _unsafe_globals(path: Path) -> list[str]:
    """The globals the pickle would import, read from its opcodes without running them (for the message)."""
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:
        return []


def _allowed_name(name: str) -> bool:
    return any(name.startswith(p) for p in ALLOWED_TARGET_PREFIXES)


def _check_target(target: Any, where: str, path: Path) -> None:
    from hydra._internal.utils import _locate

    if not isinstance(target, str) or not _allowed_name(target):
        raise UnsafeCheckpointError(
            f"{path}: refusing to instantiate {where}._target_={target!r}: only targets under "
            f"{', '.join(ALLOWED_TARGET_PREFIXES)} are allowed"
        )
    # "ferops.models.factory.torch.load" starts with "ferops." but is torch.load: check what it resolves to.
    try:
        obj = _locate(target)
    except Exception as err:
        raise UnsafeCheckpointError(f"{path}: {where}._target_={target!r} cannot be resolved: {err}") from err
    module = getattr(obj, "__module__", None) or ""
    if not (inspect.isclass(obj) or inspect.isfunction(obj)) or not _allowed_name(module + "."):
        raise UnsafeCheckpointError(
            f"{path}: refusing to instantiate {where}._target_={target!r}: it resolves to {obj!r} "
            f"(module {module or '?'}), not a class or function under {', '.join(ALLOWED_TARGET_PREFIXES)}"
        )


def _check_config(node: Any, where: str, path: Path) -> None:
    """Every `_target_` (recursively) on the allow-list; no interpolations (the stored config is resolved)."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            if key == "_target_":
                _check_target(value, where, path)
            else:
                _check_config(value, f"{where}.{key}", path)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            _check_config(value, f"{where}[{i}]", path)
    elif isinstance(node, str) and "${" in node:
        raise UnsafeCheckpointError(f"{path}: {where}={node!r}: interpolations are not allowed in a checkpoint's config")


def load_deployable(ckpt_path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    path = Path(ckpt_path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    ckpt = _load(path)
    meta = ckpt.get("ferops")
    if not meta:
        raise ValueError(f"{path}: not a ferops checkpoint (no 'ferops' metadata)")
    model_cfg = dict(meta["config"]["model"])
    _check_config(model_cfg, "config.model", path)
    if "_target_" not in model_cfg:
        raise UnsafeCheckpointError(f"{path}: config.model has no _target_")
    # The trained weights come from the state_dict: no download, no training-time weights file.
    if "pretrained" in model_cfg:
        model_cfg["pretrained"] = False
    if "pretrained_path" in model_cfg:
        model_cfg["pretrained_path"] = None
    net = instantiate(model_cfg, num_classes=len(meta["class_names"]))
    pre = meta["preprocessing"]
    preprocess = Preprocess.from_dict(pre)
    state = ckpt["state_dict"]
    prefix = "ema.module." if any(k.startswith("ema.module.") for k in state) else "net."
    net.load_state_dict({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})
    preprocess.load_state_dict({k[len("preprocess.") :]: v for k, v in state.items() if k.startswith("preprocess.")})
    return DeployableModel(preprocess, net).eval(), meta
