"""Export options: one typed object, the source of truth for every option's name, default and description.

``conf/export/default.yaml`` (the Hydra ``export`` group) is generated from it:
``python -m ferops.typed_config`` after changing a field here, then ``make params``.

``ExportConfig.from_mapping(cfg)`` takes a dict or an OmegaConf ``DictConfig`` (e.g. ``cfg.export``
of the composed Hydra config or the ``export`` block of params.yaml) and rejects unknown keys,
so a typo in a DVC parameter fails loudly instead of being ignored.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from ferops.evaluation.threshold import POLICIES
from ferops.runtime.bundle import check_tta
from ferops.typed_config import build_dataclass, dataclass_yaml, option

__all__ = ["CalibrationConfig", "ExportConfig", "GateConfig", "UnknownConfig"]

_IO_DTYPES = ("int8", "uint8")


@dataclass
class GateConfig:
    """Thresholds that make the export fail (``None`` switches a gate off)."""

    enforce: bool = option(True, "false: record the gates in metrics.json but never fail")
    # Same name as registry.gates.max_int8_acc_drop_points, the promotion gate on the same number.
    max_int8_acc_drop_points: float | None = option(1.0, "percentage points, int8 TFLite vs fp32 PyTorch (null: off)")
    min_int8_agreement: float | None = option(0.98, "top-1 agreement int8 TFLite vs fp32 PyTorch (null: off)")
    # Conversion sanity: largest |logit difference| vs PyTorch on the eval images.
    max_onnx_logit_diff: float | None = option(1e-3, "max |logit(ONNX Runtime) - logit(PyTorch)| (null: off)")
    max_tflite_fp32_logit_diff: float | None = option(1e-2, "max |logit(fp32 TFLite) - logit(PyTorch)| (null: off)")
    # Kept in conf/ so that existing `-S export.gates.max_accuracy_drop=...` overrides still compose.
    max_accuracy_drop: float | None = option(
        None, "deprecated old name of max_int8_acc_drop_points (set: it wins, with a warning)"
    )

    def __post_init__(self) -> None:
        if self.max_accuracy_drop is not None:
            warnings.warn(
                "export.gates.max_accuracy_drop is deprecated: use export.gates.max_int8_acc_drop_points",
                FutureWarning,
                stacklevel=2,
            )
            self.max_int8_acc_drop_points, self.max_accuracy_drop = self.max_accuracy_drop, None


@dataclass
class CalibrationConfig:
    """Temperature scaling of the int8 model, fitted on the eval (val) split (ferops.evaluation.calibration)."""

    enabled: bool = option(True, "fit T on the int8 val outputs into the bundle (false: T = 1, still reported)")
    n_bins: int = option(15, "equal-width confidence bins of the ECE and the reliability diagrams")

    def __post_init__(self) -> None:
        if self.n_bins < 1:
            raise ValueError(f"export.calibration.n_bins must be >= 1, got {self.n_bins}")


@dataclass
class UnknownConfig:
    """The "unknown" threshold recommended on val (ferops.evaluation.threshold), recorded in the bundle."""

    enabled: bool = option(False, "the bundle's default: label rows below the threshold 'unknown' (callers can ask per call)")
    policy: str = option("target_accuracy", "target_accuracy: lowest threshold reaching it; target_coverage: highest keeping it")
    target_accuracy: float = option(0.8, "accuracy of the accepted val predictions (policy target_accuracy)")
    target_coverage: float = option(0.8, "fraction of val accepted (policy target_coverage)")
    min_coverage: float = option(0.05, "target_accuracy: only thresholds accepting at least this fraction of val")

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"export.unknown.policy must be one of {POLICIES}, got {self.policy!r}")
        for name in ("target_accuracy", "target_coverage", "min_coverage"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ValueError(f"export.unknown.{name} must be a number in [0, 1], got {value!r}")


@dataclass
class ExportConfig:
    opset: int = option(17, "ONNX opset (static batch 1); the dynamo exporter uses max(opset, 18)")
    onnx_exporter: str = option(
        "auto", "auto: TorchScript, dynamo if its graph keeps dynamic shape ops (timm tf_*); torchscript; dynamo"
    )
    # ferops.export.onnx.simplify_onnx, before onnx2tf
    simplify_onnx: bool = option(True, "fold shapes/constants, Tensor.repeat's Expand/Tile -> Concat (onnx2tf, EdgeTPU)")
    image_size: int = option(48, "model input: float [1, 1, 48, 48] raw pixels 0..255")
    input_name: str = option("image")
    output_name: str = option("logits")
    input_dtype: str = option(
        "int8", section="int8 TFLite input / output tensor dtype: int8 or uint8 (the EdgeTPU takes either)."
    )
    output_dtype: str = option("int8")
    n_calibration: int = option(500, "training images, stratified by class")
    calibration_seed: int | None = option(None, "null: the run's `seed` (python -m ferops.export: 0)")
    # One 0 and one 255 pixel go into the first calibration image, so raw pixels map to integers.
    pin_input_range: bool = option(True, "input scale exactly 1.0: raw pixels quantise without rounding")
    max_eval_images: int | None = option(None, "null: score every eval image", section=" ")
    tta: str = option(
        "none", "test-time augmentation of the bundle and of every format it is scored against: none | hflip (mirror)"
    )
    n_latency_runs: int = option(
        200, section="CPU latency per face: batch 1, latency_threads threads, median and p95 over n_latency_runs."
    )
    n_latency_warmup: int = option(20)
    latency_threads: int = option(1)
    edgetpu_compiler: str = option("auto", "auto: use edgetpu_compiler when on PATH; off; or a path to the binary", section=" ")
    edgetpu_compiler_timeout_s: int = option(300)
    # The export's own gate; registry.gates.require_edgetpu_compatible is the promotion gate on the version tag.
    require_edgetpu_compatible: bool = option(False, "true: an op that would run on the CPU fails the export")
    keep_saved_model: bool = option(True)
    progress: bool = option(True)
    gates: GateConfig = field(default_factory=GateConfig, metadata={"section": " "})  # " ": a blank line before it
    # post-processing fitted on the int8 val outputs and written into the bundle (ferops.runtime.bundle)
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig, metadata={"section": " "})
    unknown: UnknownConfig = field(default_factory=UnknownConfig)

    def __post_init__(self) -> None:
        if self.calibration_seed is None:
            self.calibration_seed = 0
        check_tta(self.tta, "export.tta")
        if isinstance(self.gates, Mapping):
            self.gates = build_dataclass(GateConfig, self.gates, "export.gates")
        if isinstance(self.calibration, Mapping):
            self.calibration = build_dataclass(CalibrationConfig, self.calibration, "export.calibration")
        if isinstance(self.unknown, Mapping):
            self.unknown = build_dataclass(UnknownConfig, self.unknown, "export.unknown")
        for name in ("input_dtype", "output_dtype"):
            if getattr(self, name) not in _IO_DTYPES:
                raise ValueError(f"export.{name} must be one of {_IO_DTYPES}, got {getattr(self, name)!r}")
        if self.n_calibration < 1:
            raise ValueError(f"export.n_calibration must be >= 1, got {self.n_calibration}")
        if self.n_latency_runs < 1 or self.n_latency_warmup < 0 or self.latency_threads < 1:
            raise ValueError("export.n_latency_runs and export.latency_threads must be >= 1, n_latency_warmup >= 0")
        if self.onnx_exporter not in ("auto", "torchscript", "dynamo"):
            raise ValueError(f"export.onnx_exporter must be auto, torchscript or dynamo, got {self.onnx_exporter!r}")
        if self.opset < 13:
            raise ValueError(f"export.opset must be >= 13, got {self.opset}")

    @classmethod
    def from_mapping(cls, cfg: Mapping[str, Any] | ExportConfig | None = None, **overrides: Any) -> ExportConfig:
        if isinstance(cfg, ExportConfig):
            data = cfg.to_dict()
        else:
            data = _to_plain(cfg) if cfg is not None else {}
        data.update(overrides)
        return build_dataclass(cls, data, "export")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _to_plain(cfg: Any) -> dict[str, Any]:
    try:  # OmegaConf DictConfig (Hydra, params.yaml)
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg, DictConfig):
            return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    except ImportError:  # pragma: no cover - omegaconf is a project dependency
        pass
    return {k: (_to_plain(v) if isinstance(v, Mapping) else v) for k, v in dict(cfg).items()}


_HEADER = """\
GENERATED from ferops.export.config.ExportConfig by `python -m ferops.typed_config`: edit the
dataclass, not this file (then `make params`).
Export chain (ferops.export.run_export): PyTorch -> ONNX -> onnx2tf (SavedModel NHWC + fp32 TFLite)
-> full-int8 TFLite -> EdgeTPU check -> bundle. Plain options (no _target_): read by
ferops.export.ExportConfig.from_mapping, which rejects unknown keys."""


def export_conf_yaml() -> str:
    """The text of ``conf/export/default.yaml``: the defaults of :class:`ExportConfig`, documented."""
    return dataclass_yaml(ExportConfig, _HEADER)
