"""Export options: one typed object built from ``conf/export/default.yaml`` (plain keys, no ``_target_``).

``ExportConfig.from_mapping(cfg)`` takes a dict or an OmegaConf ``DictConfig`` (e.g. ``cfg.export``
of the composed Hydra config or the ``export`` block of params.yaml) and rejects unknown keys,
so a typo in a DVC parameter fails loudly instead of being ignored.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from ferops.typed_config import build_dataclass

__all__ = ["ExportConfig", "GateConfig"]

_IO_DTYPES = ("int8", "uint8")


@dataclass
class GateConfig:
    """Thresholds that make the export fail (``None`` switches a gate off)."""

    enforce: bool = True
    # int8 TFLite accuracy may be at most this many percentage points below fp32 PyTorch
    # (same name as registry.gates.max_int8_acc_drop_points, the promotion gate on the same number).
    max_int8_acc_drop_points: float | None = 1.0
    # Share of eval images on which int8 TFLite and fp32 PyTorch predict the same class.
    min_int8_agreement: float | None = 0.98
    # Conversion sanity: largest |logit difference| vs PyTorch on the eval images.
    max_onnx_logit_diff: float | None = 1e-3
    max_tflite_fp32_logit_diff: float | None = 1e-2
    # Deprecated old name of max_int8_acc_drop_points: still in conf/ so that existing
    # `-S export.gates.max_accuracy_drop=...` overrides compose; when set it wins, with a warning.
    max_accuracy_drop: float | None = None

    def __post_init__(self) -> None:
        if self.max_accuracy_drop is not None:
            warnings.warn("export.gates.max_accuracy_drop is deprecated: use export.gates.max_int8_acc_drop_points",
                          FutureWarning, stacklevel=2)
            self.max_int8_acc_drop_points, self.max_accuracy_drop = self.max_accuracy_drop, None


@dataclass
class ExportConfig:
    opset: int = 17
    # "auto": TorchScript exporter, dynamo (opset >= 18) when its graph keeps dynamic shape ops; or force one.
    onnx_exporter: str = "auto"
    # Fold constants/shapes and rewrite Expand/Tile from Tensor.repeat before onnx2tf (ferops.export.onnx.simplify_onnx).
    simplify_onnx: bool = True
    image_size: int = 48
    input_name: str = "image"
    output_name: str = "logits"
    # dtype of the int8 model's input and output tensors (the EdgeTPU takes either).
    input_dtype: str = "int8"
    output_dtype: str = "int8"
    # Calibration: this many training images, stratified by class.
    n_calibration: int = 500
    calibration_seed: int | None = None  # None: 0 here; the export stage passes the run's seed
    # Put one 0 and one 255 pixel into the first calibration image so the input scale is exactly 1
    # (raw pixels map to integers without rounding).
    pin_input_range: bool = True
    # Evaluate at most this many eval images (null: all of them).
    max_eval_images: int | None = None
    # CPU latency per face: batch 1, this many threads, median and p95 over n_latency_runs.
    n_latency_runs: int = 200
    n_latency_warmup: int = 20
    latency_threads: int = 1
    # EdgeTPU: "auto" compiles when `edgetpu_compiler` is on PATH, "off" never, else a path to the binary.
    edgetpu_compiler: str = "auto"
    edgetpu_compiler_timeout_s: int = 300
    require_edgetpu_compatible: bool = False
    keep_saved_model: bool = True
    progress: bool = True
    gates: GateConfig = field(default_factory=GateConfig)

    def __post_init__(self) -> None:
        if self.calibration_seed is None:
            self.calibration_seed = 0
        if isinstance(self.gates, Mapping):
            self.gates = build_dataclass(GateConfig, self.gates, "export.gates")
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


