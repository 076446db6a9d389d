"""Registry options: one typed object built from ``conf/registry/default.yaml`` (the ``registry``
block of params.yaml in the DVC flow). Unknown keys are rejected, so a typo fails loudly."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ferops.typed_config import build_dataclass

__all__ = ["Gates", "RegistryConfig", "load_registry_config"]

DEFAULT_CONFIG_FILES = ("params.yaml", "conf/registry/default.yaml")


@dataclass
class Gates:
    """What a challenger must satisfy before it may become champion (``None`` switches a gate off).
    A gate that is on fails when its value is missing from the version's tags."""

    # The export stage's own gate verdict (int8 vs fp32 drop, agreement, conversion checks).
    require_export_gates: bool = True
    # `edgetpu.compatible` must be "true" (compiler or static check ran and passed).
    require_edgetpu_compatible: bool = False
    min_int8_macro_f1: float | None = None
    # int8 TFLite accuracy at most this many percentage points below fp32.
    max_int8_acc_drop_points: float | None = None
    # CPU latency per face (median, batch 1), milliseconds.
    max_latency_ms: float | None = None


@dataclass
class RegistryConfig:
    name: str = "ferops-fer"
    # Promote only when the challenger beats the champion by more than 0 and at least this much
    # (with stored val predictions: the lower bound of the bootstrap interval of the difference).
    margin: float = 0.0
    # Version tag compared between challenger and champion (the deployable metric, on val).
    metric: str = "int8.macro_f1"
    # Paired bootstrap of challenger vs champion on the same val rows (0 resamples: compare the tags).
    confidence: float = 0.95
    bootstrap_resamples: int = 2000
    # The DVC register stage runs `promote` right after registering.
    auto_promote: bool = True
    gates: Gates = field(default_factory=Gates)

    def __post_init__(self) -> None:
        if isinstance(self.gates, Mapping):
            self.gates = build_dataclass(Gates, self.gates, "registry.gates")
        if not self.name:
            raise ValueError("registry.name must not be empty")
        if self.margin < 0:
            raise ValueError(f"registry.margin must be >= 0, got {self.margin}")
        if not 0 < self.confidence < 1:
            raise ValueError(f"registry.confidence must be in (0, 1), got {self.confidence}")
        if self.bootstrap_resamples < 0:
            raise ValueError(f"registry.bootstrap_resamples must be >= 0, got {self.bootstrap_resamples}")

    @classmethod
    def from_mapping(cls, cfg: Mapping[str, Any] | None = None, **overrides: Any) -> RegistryConfig:
        data = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in dict(cfg or {}).items()}
        data.update({k: v for k, v in overrides.items() if v is not None})
        return build_dataclass(cls, data, "registry")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_registry_config(path: str | Path | None = None, **overrides: Any) -> RegistryConfig:
    """`path` (params.yaml with a ``registry:`` block, or a registry yaml itself); without one the
    first of params.yaml / conf/registry/default.yaml in the working directory; else the defaults."""
    candidates = [Path(path)] if path else [Path(p) for p in DEFAULT_CONFIG_FILES]
    for p in candidates:
        if not p.is_file():
            if path:
                raise FileNotFoundError(p)
            continue
        data = yaml.safe_load(p.read_text()) or {}
        if "registry" in data:
            return RegistryConfig.from_mapping(data["registry"], **overrides)
        if p.name != "params.yaml":
            return RegistryConfig.from_mapping(data, **overrides)
    return RegistryConfig.from_mapping({}, **overrides)
