"""Export gates: thresholds on the export metrics; a failed gate raises :class:`ExportGateError`.

Each gate reads one number from the metrics dict that :func:`ferops.export.run_export` writes
(``metrics.json``) and compares it with a threshold from ``export.gates``; ``None`` turns a gate off.
The error message names every failed gate with its measured value, the threshold and by how much
it was missed, e.g.::

    export gate failed: int8_accuracy_drop = 2.40 points, must be <= 1.00 points (missed by 1.40 points)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ferops.export.config import ExportConfig

__all__ = ["ExportGateError", "GateResult", "enforce_export_gates", "evaluate_export_gates"]


@dataclass(frozen=True)
class GateResult:
    name: str
    measured: float
    threshold: float
    op: str  # "<=" or ">="
    unit: str
    passed: bool
    detail: str = ""

    @property
    def miss(self) -> float:
        """How far the measured value is on the wrong side of the threshold (0 when passed)."""
        gap = self.measured - self.threshold if self.op == "<=" else self.threshold - self.measured
        return max(gap, 0.0)

    def message(self) -> str:
        fmt = _fmt(self.unit)
        msg = f"{self.name} = {fmt(self.measured)}, must be {self.op} {fmt(self.threshold)} (missed by {fmt(self.miss)})"
        return msg + (f": {self.detail}" if self.detail else "")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"miss": self.miss}


def _fmt(unit: str):
    if unit == "%":
        return lambda v: f"{v:.2%}"
    if unit == "points":
        return lambda v: f"{v:.2f} points"
    if unit == "logit":
        return lambda v: f"{v:.3g}"
    return lambda v: f"{v:g}{(' ' + unit) if unit else ''}"


class ExportGateError(RuntimeError):
    """One or more export gates failed; ``.failures`` lists them, ``.report`` holds the export report."""

    def __init__(self, failures: list[GateResult], report: dict[str, Any] | None = None):
        self.failures = failures
        self.report = report or {}
        lines = [f"export gate failed: {f.message()}" for f in failures]
        super().__init__("\n".join(lines))


def evaluate_export_gates(metrics: dict[str, Any], cfg: ExportConfig, edgetpu: dict[str, Any] | None = None) -> list[GateResult]:
    """All enabled gates, passed or not. ``metrics`` is the ``metrics.json`` dict; ``edgetpu`` the
    EdgeTPU report dict (``EdgeTPUReport.to_dict()``), needed when ``require_edgetpu_compatible``."""
    g = cfg.gates
    results: list[GateResult] = []

    def add(
        name: str, measured: float, threshold: float | None, op: str, unit: str, detail: str = "", passed: bool | None = None
    ) -> None:
        if threshold is None:
            return
        if passed is None:  # a hair of tolerance: 100 * (0.80 - 0.79) is 1.0000000000000009
            tol = 1e-9 * max(1.0, abs(threshold))
            passed = measured <= threshold + tol if op == "<=" else measured >= threshold - tol
        results.append(GateResult(name, float(measured), float(threshold), op, unit, bool(passed), detail))

    int8 = metrics["tflite_int8"]
    add(
        "int8_accuracy_drop",
        int8["accuracy_drop_points"],
        g.max_int8_acc_drop_points,
        "<=",
        "points",
        "int8 TFLite vs fp32 PyTorch accuracy, percentage points",
    )
    add(
        "int8_top1_agreement",
        int8["top1_agreement"],
        g.min_int8_agreement,
        ">=",
        "%",
        "share of eval images where int8 TFLite and fp32 PyTorch predict the same class",
    )
    add("onnx_max_abs_logit_diff", metrics["onnx"]["max_abs_logit_diff"], g.max_onnx_logit_diff, "<=", "logit")
    add(
        "tflite_fp32_max_abs_logit_diff",
        metrics["tflite_fp32"]["max_abs_logit_diff"],
        g.max_tflite_fp32_logit_diff,
        "<=",
        "logit",
    )
    if cfg.require_edgetpu_compatible:
        if edgetpu is None:
            raise ValueError("require_edgetpu_compatible needs the EdgeTPU report")
        compatible = bool(edgetpu.get("compatible"))
        compiler = edgetpu.get("compiler") or {}
        first = edgetpu.get("first_cpu_op")
        if compatible:
            fraction, detail = 1.0, ""
        elif compiler and not compiler.get("ok"):
            fraction = 0.0
            detail = (
                f"edgetpu_compiler failed (return code {compiler.get('returncode')}); see exports/edgetpu/edgetpu_compiler.log"
            )
        elif compiler.get("ok") and compiler.get("total_ops"):
            fraction = compiler.get("ops_on_tpu", 0) / compiler["total_ops"]
            cpu_ops = sorted({o["op"] for o in compiler.get("operators", []) if not o["mapped"]})
            detail = f"edgetpu_compiler runs {compiler.get('ops_on_cpu')} ops on the CPU ({', '.join(cpu_ops)})"
        else:
            fraction = float(edgetpu.get("mapped_fraction", 0.0))
            if first:
                detail = f"first CPU op #{first['index']} {first['op']} ({'; '.join(first['reasons'][:3])})"
            else:
                detail = "; ".join(edgetpu.get("model_issues", [])) or edgetpu.get("summary", "")
        add("edgetpu_mapped_ops", fraction, 1.0, ">=", "%", detail, passed=compatible)
    return results


def enforce_export_gates(
    metrics: dict[str, Any], cfg: ExportConfig, edgetpu: dict[str, Any] | None = None, report: dict[str, Any] | None = None
) -> list[GateResult]:
    """:func:`evaluate_export_gates`, raising :class:`ExportGateError` for the failures when ``cfg.gates.enforce``."""
    results = evaluate_export_gates(metrics, cfg, edgetpu)
    failures = [r for r in results if not r.passed]
    if failures and cfg.gates.enforce:
        raise ExportGateError(failures, report)
    return results


# Old names, kept so existing callers keep working (registry.promote had a `check_gates` too).
evaluate_gates = evaluate_export_gates
check_gates = enforce_export_gates
