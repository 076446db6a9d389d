"""Quantisation-aware fine-tuning: train a checkpoint's weights under the int8 arithmetic the
exported TFLite model will use, then export it through the unchanged chain.

Why this path (and not another):

- ``torch.ao.quantization`` (eager / FX QAT) is deprecated in this torch and converts to torch's
  own quantized kernels, which the ONNX -> onnx2tf -> TFLite chain does not take.
- QDQ ONNX (QuantizeLinear / DequantizeLinear pairs) would need onnx2tf to turn them into a
  faithful full-integer TFLite file; it re-quantises instead, so the QAT ranges would be lost
  anyway.
- So QAT here only changes the float weights: fake quantisation (``torch.fake_quantize_per_channel_affine``
  / ``torch.fake_quantize_per_tensor_affine``, straight-through gradients) in the forward pass,
  removed again before the checkpoint is written. The export then runs its post-training
  calibrated conversion on weights that have learnt to live with int8 rounding. What is
  simulated is what the TFLite converter does:

  * weights: per output channel, symmetric, int8 in [-127, 127] (scale = max|w_c| / 127). The
    converter folds BatchNorm into the conv first; per-channel symmetric rounding of the folded
    weight ``w_c * g_c`` is the rounding of ``w_c`` scaled by ``g_c``, so the unfolded weight is
    fake-quantised and BatchNorm is frozen (running statistics, as folded) while fine-tuning.
  * activations: per tensor, asymmetric, int8 in [-128, 127], range from a moving average of
    the batch min / max (0 always inside), placed where TFLite requantises: after each fused
    conv + BN + activation (on the activation's output; on the BN's or the conv's when none
    follows) and after each linear layer. Where they sit is found by running the network once
    and reading the order its layers finish in (`activation_sites`), so timm backbones and our
    CNNs need no per-model table.
  * the preprocessing stays folded in the model (raw 0..255 pixels in, exact in int8).

Not simulated: requantisation after residual adds, pooling means and the SE gate's multiply
(each one more rounding in TFLite); hard-swish stays off the EdgeTPU whatever QAT does.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.utils import parametrize

log = logging.getLogger(__name__)

WEIGHT_QMIN, WEIGHT_QMAX = -127, 127  # TFLite int8 weights: symmetric, -128 unused
ACT_QMIN, ACT_QMAX = -128, 127

ACTIVATIONS: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.SiLU,
    nn.GELU,
    nn.ELU,
    nn.Sigmoid,
    nn.Tanh,
)
try:  # timm's own activation modules (used when its config asks for them)
    from timm.layers import activations as _timm_act

    ACTIVATIONS += tuple(
        c for c in vars(_timm_act).values() if isinstance(c, type) and issubclass(c, nn.Module) and c is not nn.Module
    )
except ImportError:  # pragma: no cover - timm is a dependency
    pass
PRODUCERS = (nn.Conv2d, nn.Linear)
POOLS = (nn.AdaptiveAvgPool2d, nn.AvgPool2d)  # TFLite MEAN / AVERAGE_POOL_2D requantise (max pooling does not)
PASS_THROUGH = (nn.Identity, nn.Dropout, nn.Dropout2d)


@dataclass(frozen=True)
class QATConfig:
    """``conf/qat/default.yaml``. ``from_checkpoint`` is the config's ``from`` key."""

    enabled: bool = False
    epochs: int = 3
    from_checkpoint: str | None = None
    lr: float = 2.0e-4
    observer_momentum: float = 0.01

    @classmethod
    def from_mapping(cls, node: Mapping[str, Any] | None) -> QATConfig:
        node = dict(node or {})
        unknown = sorted(set(node) - {"enabled", "epochs", "from", "lr", "observer_momentum"})
        if unknown:
            raise ValueError(f"qat: unknown keys {unknown} (expected enabled, epochs, from, lr, observer_momentum)")
        cfg = cls(
            enabled=bool(node.get("enabled", False)),
            epochs=int(node.get("epochs", cls.epochs)),
            from_checkpoint=None if node.get("from") in (None, "") else str(node["from"]),
            lr=float(node.get("lr", cls.lr)),
            observer_momentum=float(node.get("observer_momentum", cls.observer_momentum)),
        )
        if cfg.enabled and cfg.from_checkpoint is None:
            raise ValueError("qat.enabled=true needs qat.from=CKPT: QAT fine-tunes a trained fp32 checkpoint")
        if cfg.epochs < 1 or not 0 < cfg.observer_momentum <= 1 or cfg.lr <= 0:
            raise ValueError(f"qat: epochs >= 1, 0 < observer_momentum <= 1 and lr > 0 needed, got {node}")
        return cfg


class PerChannelWeightFakeQuant(nn.Module):
    """Parametrization of a conv / linear weight: symmetric per-output-channel int8 rounding."""

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        scale = w.detach().abs().flatten(1).amax(dim=1).clamp_min(1e-8) / WEIGHT_QMAX
        zero = torch.zeros_like(scale, dtype=torch.int32)
        return torch.fake_quantize_per_channel_affine(w, scale.float(), zero, 0, WEIGHT_QMIN, WEIGHT_QMAX)


class ActivationFakeQuant(nn.Module):
    """Per-tensor asymmetric int8 rounding of an activation, range = moving average of batch min/max.

    The range lives in non-persistent buffers: a checkpoint holds only the float model the export
    reads (its calibration sets the TFLite ranges)."""

    low: torch.Tensor
    high: torch.Tensor
    seen: torch.Tensor

    def __init__(self, momentum: float = 0.01):
        super().__init__()
        self.momentum = momentum
        self.register_buffer("low", torch.zeros(()), persistent=False)
        self.register_buffer("high", torch.zeros(()), persistent=False)
        self.register_buffer("seen", torch.zeros((), dtype=torch.bool), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        if self.low.device != x.device:  # not a submodule (see prepare_qat): .to() does not reach it
            self.to(x.device)
        if self.training or not bool(self.seen):
            lo, hi = xf.detach().min().clamp(max=0.0), xf.detach().max().clamp(min=0.0)
            if bool(self.seen):
                lo = torch.lerp(self.low, lo, self.momentum)
                hi = torch.lerp(self.high, hi, self.momentum)
            self.low.copy_(lo)
            self.high.copy_(hi)
            self.seen.fill_(True)
        scale = ((self.high - self.low) / (ACT_QMAX - ACT_QMIN)).clamp_min(1e-8)
        zero = (ACT_QMIN - torch.round(self.low / scale)).clamp(ACT_QMIN, ACT_QMAX).to(torch.int32)
        return torch.fake_quantize_per_tensor_affine(xf, scale.reshape(()), zero.reshape(()), ACT_QMIN, ACT_QMAX).to(x.dtype)


def _finish_order(net: nn.Module, example: torch.Tensor) -> list[nn.Module]:
    """Tracked modules (convs, linears, batch norms, activations) in the order their forward ends."""
    order: list[nn.Module] = []
    tracked = (*PRODUCERS, _BatchNorm, *ACTIVATIONS, *POOLS)
    hooks = [m.register_forward_hook(lambda mod, _i, _o: order.append(mod)) for m in net.modules() if isinstance(m, tracked)]
    was_training = net.training
    try:
        with torch.no_grad():
            net.eval()(example)
    finally:
        net.train(was_training)
        for h in hooks:
            h.remove()
    return order


def activation_sites(net: nn.Module, example: torch.Tensor) -> list[nn.Module]:
    """The modules whose output TFLite requantises (see the module docstring), in call order."""
    inside_bn = {id(c) for m in net.modules() if isinstance(m, _BatchNorm) for c in m.modules() if c is not m}
    # activations inside a fused norm + act module (timm's BatchNormAct2d) are its own business
    order = [m for m in _finish_order(net, example) if id(m) not in inside_bn]
    sites: list[nn.Module] = []
    for i, m in enumerate(order):
        nxt = order[i + 1] if i + 1 < len(order) else None
        if isinstance(m, (*ACTIVATIONS, *POOLS)):
            sites.append(m)
        elif isinstance(m, _BatchNorm):
            fused_act = any(isinstance(c, ACTIVATIONS) for c in m.modules() if c is not m)
            if fused_act or not isinstance(nxt, ACTIVATIONS):
                sites.append(m)
        elif isinstance(m, PRODUCERS) and not isinstance(nxt, (_BatchNorm, *ACTIVATIONS)):
            sites.append(m)
    unique: list[nn.Module] = []  # a module called twice (shared) gets one quantiser
    for m in sites:
        if all(m is not u for u in unique):
            unique.append(m)
    return unique


@dataclass
class QATHandles:
    """What `prepare_qat` attached: weight parametrizations and activation quantiser hooks."""

    weights: list[nn.Module]
    activations: list[ActivationFakeQuant]
    hooks: list[Any]


def prepare_qat(net: nn.Module, example: torch.Tensor, momentum: float = 0.01) -> QATHandles:
    """Fake-quantise ``net`` in place: every conv / linear weight, every requantised activation.
    BatchNorm layers are frozen (running statistics), as the converter folds them."""
    sites = activation_sites(net, example)
    weights: list[nn.Module] = [m for m in net.modules() if isinstance(m, PRODUCERS)]
    for producer in weights:
        parametrize.register_parametrization(producer, "weight", PerChannelWeightFakeQuant())
    quantisers, hooks = [], []
    for site in sites:
        fq = ActivationFakeQuant(momentum)
        # a submodule would add buffers to the state dict's key set: keep it as a plain attribute
        object.__setattr__(site, "_ferops_act_fq", fq)
        hooks.append(site.register_forward_hook(_quantise_output))
        quantisers.append(fq)
    freeze_batch_norm(net)
    log.info("QAT: %d weights per-channel, %d activation sites per-tensor", len(weights), len(quantisers))
    return QATHandles(weights, quantisers, hooks)


def _quantise_output(module: nn.Module, _inputs: Any, output: torch.Tensor) -> torch.Tensor:
    fq: ActivationFakeQuant = module.__dict__["_ferops_act_fq"]
    fq.training = module.training  # ranges adapt while training, stay fixed for validation and test
    return fq(output)


def freeze_batch_norm(net: nn.Module) -> None:
    """Batch norms use (and keep) their running statistics, as the folded TFLite conv does; their
    affine parameters still train. ``FERClassifier.train()`` calls it again after every mode switch."""
    for m in net.modules():
        if isinstance(m, _BatchNorm):
            m.eval()


PARAMETRIZED = ".parametrizations.weight.original"


def plain_state_dict(state: Mapping[str, Any]) -> dict[str, Any]:
    """A QAT model's state dict under the float model's keys (what the export loads)."""
    return {k.replace(PARAMETRIZED, ".weight") if k.endswith(PARAMETRIZED) else k: v for k, v in state.items()}


def parametrized_state_dict(state: Mapping[str, Any], model_keys: Iterable[str]) -> dict[str, Any]:
    """The inverse of `plain_state_dict` for a model that is fake-quantised now (``model_keys``)."""
    wanted = {k.replace(PARAMETRIZED, ".weight"): k for k in model_keys if k.endswith(PARAMETRIZED)}
    return {wanted.get(k, k): v for k, v in state.items()}


def apply_qat_overrides(cfg: Any, q: QATConfig) -> None:
    """What a QAT fine-tune changes in the training config (``cfg`` is the composed DictConfig, so
    the logged params say what ran): ``qat.epochs`` epochs at ``qat.lr`` without warm-up, no EMA
    (it would average weights the fake quantisation never saw) and no frozen-backbone phase."""
    from omegaconf import open_dict

    with open_dict(cfg):
        cfg.trainer.max_epochs = q.epochs
        cfg.optim.optimizer.lr = q.lr
        cfg.optim.warmup_epochs = 0
        cfg.optim.ema_decay = 0.0
        if "freeze_backbone_epochs" in cfg.optim:
            cfg.optim.freeze_backbone_epochs = 0
    log.info("QAT fine-tune of %s: %d epochs at lr %g, no warm-up, no EMA", q.from_checkpoint, q.epochs, q.lr)


def start_from_checkpoint(module: Any, q: QATConfig) -> QATHandles:
    """Load ``qat.from``'s weights into ``module`` (a `FERClassifier` of the same model, classes and
    preprocessing) and fake-quantise its network. The checkpoint is opened as untrusted
    (`ferops.models.checkpoint.load_deployable`)."""
    from ferops.models.checkpoint import load_deployable

    path = str(q.from_checkpoint)
    source, meta = load_deployable(path)
    checks = {
        "class names": (list(meta["class_names"]), list(module.class_names)),
        "model": (meta.get("model_name"), module.meta.get("model_name")),
        "preprocessing": (_preprocessing_key(meta["preprocessing"]), _preprocessing_key(module.meta["preprocessing"])),
    }
    for what, (theirs, ours) in checks.items():
        if theirs != ours:
            raise ValueError(f"qat.from={path}: its {what} {theirs} differ from this run's {ours}")
    source_parts = dict(source.named_children())  # DeployableModel: preprocess, net
    module.net.load_state_dict(source_parts["net"].state_dict())
    module.preprocess.load_state_dict(source_parts["preprocess"].state_dict())
    size = int(module.meta["preprocessing"].get("input_size", 48))
    example = module.preprocess(torch.zeros(2, 1, size, size))
    module.qat = prepare_qat(module.net, example, q.observer_momentum)
    module.meta["qat"] = {"from": path, "epochs": q.epochs, "lr": q.lr, "from_data_fingerprint": meta.get("data_fingerprint")}
    return module.qat


def _preprocessing_key(pre: Mapping[str, Any]) -> tuple:
    return tuple(
        pre.get(k) if not isinstance(pre.get(k), list) else tuple(pre[k]) for k in ("input_size", "in_chans", "mean", "std")
    )
