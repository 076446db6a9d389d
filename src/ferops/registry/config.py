"""Registry options: one typed object (the ``registry`` block of params.yaml in the DVC flow), the
source of truth for every option's name, default and description: ``conf/registry/default.yaml`` is
generated from it (``python -m ferops.typed_config``). Unknown keys are rejected, so a typo fails loudly."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ferops.typed_config import build_dataclass, dataclass_yaml, option

__all__ = ["Gates", "RegistryConfig", "load_registry_config", "registry_conf_yaml"]

DEFAULT_CONFIG_FILES = ("params.yaml", "conf/registry/default.yaml")


@dataclass
class Gates:
    """What a challenger must satisfy before it may become champion (``None`` switches a gate off).
    A gate that is on fails when its value is missing from the version's tags."""

    require_export_gates: bool = option(True, "the export stage's own gates (int8 drop, agreement, conversion) passed")
    # The promotion gate on the version tag; export.require_edgetpu_compatible fails the export itself.
    require_edgetpu_compatible: bool = option(
        False, "true: edgetpu.compatible must hold (compiler log, else the static op check)"
    )
    min_int8_macro_f1: float | None = option(None)
    # Same name as export.gates.max_int8_acc_drop_points (the export's gate on the same number).
    max_int8_acc_drop_points: float | None = option(None, "fp32 - int8 accuracy on the eval data, percentage points")
    max_latency_ms: float | None = option(None, "median CPU latency per face, batch 1")


@dataclass
class RegistryConfig:
    name: str = option("ferops-fer")
    margin: float = option(
        0.0,
        section="""\
The challenger must beat the champion on `metric` by more than 0 and by at least `margin`; when
both versions carry their int8 val predictions, the lower bound of the paired-bootstrap interval
of the difference must clear it (versions without predictions: the tag values, with a warning).""",
    )
    metric: str = option(
        "int8.macro_f1",
        section="""\
Version tag compared: int8 TFLite macro-F1 on the VAL split (the test split is reported, never
compared). Both versions must carry the same data.fingerprint and split.val_digest, otherwise
promotion refuses to compare them (versions without a split record: compared, with a warning).""",
    )
    confidence: float = option(
        0.95, section="Paired bootstrap on the shared val rows: confidence of the interval, number of resamples (0: off)."
    )
    bootstrap_resamples: int = option(2000)
    auto_promote: bool = option(
        True, section="The DVC register stage runs the promotion right after registering the new version."
    )
    gates: Gates = field(
        default_factory=Gates,
        metadata={
            "section": """\
Every gate must pass before a version can become champion (null switches a gate off;
a gate that is on fails when the version lacks the value)."""
        },
    )

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


_HEADER = """\
GENERATED from ferops.registry.config.RegistryConfig by `python -m ferops.typed_config`: edit the
dataclass, not this file (then `make params`).
Model registry and champion/challenger promotion (ferops.registry.RegistryConfig; unknown keys are errors).
Aliases: `challenger` = newest registered version, `champion` = served (models:/<name>@champion),
`previous-champion` = what `ferops rollback` restores."""


def registry_conf_yaml() -> str:
    """The text of ``conf/registry/default.yaml``: the defaults of :class:`RegistryConfig`, documented."""
    return dataclass_yaml(RegistryConfig, _HEADER)
