"""Export: PyTorch -> ONNX -> TensorFlow (onnx2tf) -> full-int8 TFLite -> EdgeTPU check -> bundle.

Entry point: :func:`run_export` (used by the DVC ``export`` stage and ``python -m ferops.export``).
TensorFlow and onnx2tf are imported only when a conversion runs. No MLflow here.
"""

from ferops.export.bundle import write_bundle
from ferops.export.chain import FORMATS, flat_metrics, parity, run_export
from ferops.export.config import ExportConfig, GateConfig
from ferops.export.edgetpu import EdgeTPUReport, check_edgetpu, run_edgetpu_compiler
from ferops.export.gates import (
    ExportGateError,
    GateResult,
    check_gates,
    enforce_export_gates,
    evaluate_export_gates,
    evaluate_gates,
)
from ferops.export.onnx import export_onnx
from ferops.export.tensorflow import onnx_to_tensorflow
from ferops.export.tflite import quantize_int8, select_calibration

__all__ = [
    "FORMATS",
    "EdgeTPUReport",
    "ExportConfig",
    "ExportGateError",
    "GateConfig",
    "GateResult",
    "check_edgetpu",
    "check_gates",  # old name of enforce_export_gates
    "enforce_export_gates",
    "evaluate_export_gates",
    "evaluate_gates",  # old name of evaluate_export_gates
    "export_onnx",
    "flat_metrics",
    "onnx_to_tensorflow",
    "parity",
    "quantize_int8",
    "run_edgetpu_compiler",
    "run_export",
    "select_calibration",
    "write_bundle",
]
