"""EdgeTPU compatibility report: the static check of every operator, plus the compiler's verdict when it ran.

Static check (:func:`check_edgetpu`): reads the int8 ``.tflite`` (``ferops.export.tflite_reader``: no
interpreter, no TensorFlow) and checks each operator, in execution order, against the EdgeTPU rules
(``ferops.export.edgetpu_rules``).

The EdgeTPU compiler maps the graph up to the *first* op it cannot run; that op and everything after
it run on the CPU (one EdgeTPU subgraph). The report names that first CPU op and the share of ops
that would map (``ops before it / all ops``). When ``edgetpu_compiler`` is on PATH its parsed log
(``ferops.export.edgetpu_compiler``) is attached and, being the authority, decides compatibility.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ferops.export.edgetpu_compiler import find_edgetpu_compiler, parse_compiler_log, run_edgetpu_compiler
from ferops.export.edgetpu_rules import EDGETPU_OPS, general_issues
from ferops.export.tflite_reader import read_tflite_ops

# find_edgetpu_compiler, parse_compiler_log, run_edgetpu_compiler and read_tflite_ops lived here
# before the split: re-exported for callers that import them from ferops.export.edgetpu.
__all__ = [
    "EDGETPU_OPS",
    "EdgeTPUReport",
    "OpCheck",
    "check_edgetpu",
    "find_edgetpu_compiler",
    "parse_compiler_log",
    "read_tflite_ops",
    "run_edgetpu_compiler",
]


@dataclass
class OpCheck:
    index: int
    op: str
    supported: bool
    mapped: bool
    reasons: list[str]
    note: str
    inputs: list[str]
    outputs: list[str]


@dataclass
class EdgeTPUReport:
    model: str
    n_ops: int
    n_supported: int
    n_mapped: int
    mapped_fraction: float
    first_cpu_op: OpCheck | None
    model_issues: list[str]
    ops: list[OpCheck]
    compiler: dict[str, Any] | None = None

    @property
    def compatible(self) -> bool:
        """Fully mapped: the compiler's verdict when it ran (a failed compilation is not compatible),
        else the static check's."""
        if self.compiler is not None:
            ok = bool(self.compiler.get("ok"))
            return ok and self.compiler.get("ops_on_cpu", 1) == 0 and self.compiler.get("subgraphs", 1) == 1
        return self.first_cpu_op is None and not self.model_issues

    def op_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for o in self.ops:
            counts[o.op] = counts.get(o.op, 0) + 1
        return counts

    def summary(self) -> str:
        if self.compatible or (self.first_cpu_op is None and not self.model_issues):
            head = f"EdgeTPU: all {self.n_ops} ops map" + ("" if self.compatible else " by the static check")
        elif self.first_cpu_op is not None:
            f = self.first_cpu_op
            head = (
                f"EdgeTPU: {self.n_mapped}/{self.n_ops} ops map ({self.mapped_fraction:.1%}); "
                f"first CPU op #{f.index} {f.op}: {'; '.join(f.reasons)}"
            )
        else:
            head = f"EdgeTPU: not compatible: {'; '.join(self.model_issues)}"
        if self.compiler is not None and self.compiler.get("ok"):
            head += f" [edgetpu_compiler {self.compiler.get('version', '?')}: {self.compiler.get('ops_on_tpu')} on TPU, {self.compiler.get('ops_on_cpu')} on CPU]"
        elif self.compiler is not None:
            head += f" [edgetpu_compiler FAILED, return code {self.compiler.get('returncode')}: see edgetpu_compiler.log]"
        return head

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["compatible"] = self.compatible
        d["op_counts"] = self.op_counts()
        d["summary"] = self.summary()
        return d


def check_edgetpu(tflite: str | Path | bytes) -> EdgeTPUReport:
    """Static EdgeTPU compatibility of a .tflite (see the module docstring)."""
    ops, facts = read_tflite_ops(tflite)
    model_issues = []
    if facts["n_subgraphs"] != 1:
        model_issues.append(f"{facts['n_subgraphs']} subgraphs (control flow is not supported)")
    checks: list[OpCheck] = []
    first: OpCheck | None = None
    for op in ops:
        reasons = general_issues(op)
        rule, note = EDGETPU_OPS.get(op.name, (None, ""))
        if rule is None:
            reasons.insert(0, f"{op.name} is not in the EdgeTPU supported-op list")
        else:
            reasons.extend(rule(op))
        check = OpCheck(
            index=op.index,
            op=op.name,
            supported=not reasons,
            mapped=first is None and not reasons,
            reasons=reasons,
            note=note,
            inputs=[t.brief() for t in op.inputs if not t.constant],
            outputs=[t.brief() for t in op.outputs],
        )
        if first is None and reasons:
            first = check
        checks.append(check)
    n = len(checks)
    n_mapped = sum(c.mapped for c in checks)
    return EdgeTPUReport(
        model=str(tflite) if isinstance(tflite, (str, Path)) else "<bytes>",
        n_ops=n,
        n_supported=sum(c.supported for c in checks),
        n_mapped=n_mapped,
        mapped_fraction=(n_mapped / n) if n else 0.0,
        first_cpu_op=first,
        model_issues=model_issues,
        ops=checks,
    )
