"""EdgeTPU compatibility report: the static check of every operator, plus the compiler's verdict when it ran.

Static check (:func:`check_edgetpu`): reads the int8 ``.tflite`` (``ferops.export.tflite_reader``: no
interpreter, no TensorFlow) and checks each operator, in execution order, against the EdgeTPU rules
(``ferops.export.edgetpu_rules``) and its version against the highest one ``edgetpu_compiler`` 16
accepts (``ferops.export.edgetpu_op_versions``). One too-new version, of any op, and the compiler
cannot parse the model: nothing maps. Parameter bytes (constant tensors) are compared with the 8 MiB
on-chip cache: over it they stream from host memory on every inference, a latency warning only.

The EdgeTPU compiler maps the graph up to the *first* op it cannot run; that op and everything after
it run on the CPU (one EdgeTPU subgraph). The report names that first CPU op and the share of ops
that would map (``ops before it / all ops``). When ``edgetpu_compiler`` is on PATH its parsed log
(``ferops.export.edgetpu_compiler``) is attached and, being the authority, decides compatibility.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ferops.export.edgetpu_compiler import find_edgetpu_compiler, parse_compiler_log, run_edgetpu_compiler
from ferops.export.edgetpu_op_versions import COMPILER_RUNTIME, COMPILER_VERSION, SOURCE, max_version, version_issue
from ferops.export.edgetpu_rules import EDGETPU_OPS, general_issues
from ferops.export.tflite_reader import read_tflite_ops

# find_edgetpu_compiler, parse_compiler_log, run_edgetpu_compiler and read_tflite_ops lived here
# before the split: re-exported for callers that import them from ferops.export.edgetpu.
__all__ = [
    "EDGETPU_OPS",
    "ON_CHIP_CACHE_BYTES",
    "EdgeTPUReport",
    "OpCheck",
    "check_edgetpu",
    "find_edgetpu_compiler",
    "parse_compiler_log",
    "read_tflite_ops",
    "run_edgetpu_compiler",
]


# Parameter cache of the Coral EdgeTPU (the compiler logs "On-chip memory remaining for caching model
# parameters: 7.99MiB" after 3.25 KiB used, tests/export/test_edgetpu.py COMPILER_LOG_PARTIAL).
ON_CHIP_CACHE_BYTES = 8 * 1024**2


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
    version: int = 1
    version_limit: int | None = None  # highest version edgetpu_compiler 16 accepts; None: op not in the table


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
    too_new_ops: list[dict[str, Any]] = field(default_factory=list)  # {"index", "op", "version", "limit", "reason"}
    parameter_bytes: int = 0
    warnings: list[str] = field(default_factory=list)

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

    def op_versions(self) -> list[dict[str, Any]]:
        """Each distinct (op, version) in the model with the compiler's limit, in first-use order."""
        seen: dict[tuple[str, int], dict[str, Any]] = {}
        for o in self.ops:
            seen.setdefault((o.op, o.version), {"op": o.op, "version": o.version, "limit": o.version_limit})
        return list(seen.values())

    def summary(self) -> str:
        if self.compatible or (self.first_cpu_op is None and not self.model_issues):
            head = f"EdgeTPU: all {self.n_ops} ops map" + ("" if self.compatible else " by the static check")
            if self.too_new_ops:  # only reached when the compiler ran and accepted the model: its log wins
                head += f" (the static version check flagged {', '.join(t['op'] for t in self.too_new_ops)})"
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
        if not self.too_new_ops:
            head += f"; op versions within edgetpu_compiler {COMPILER_VERSION}'s limits (TF Lite {COMPILER_RUNTIME})"
        head += (
            f"; parameters {self.parameter_bytes / 1024**2:.2f} MiB of the {ON_CHIP_CACHE_BYTES / 1024**2:.0f} MiB on-chip cache"
        )
        return head + "".join(f"; WARNING: {w}" for w in self.warnings)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["compatible"] = self.compatible
        d["op_counts"] = self.op_counts()
        d["op_versions"] = self.op_versions()
        d["version_cutoff"] = {"compiler": COMPILER_VERSION, "tflite_runtime": COMPILER_RUNTIME, "source": SOURCE}
        d["on_chip_cache_bytes"] = ON_CHIP_CACHE_BYTES
        d["summary"] = self.summary()
        return d


def check_edgetpu(tflite: str | Path | bytes, runtime: str = COMPILER_RUNTIME) -> EdgeTPUReport:
    """Static EdgeTPU compatibility of a .tflite (see the module docstring); ``runtime``: the TF Lite
    runtime whose op versions the compiler knows (``edgetpu_op_versions.COMPILER_RUNTIME``)."""
    ops, facts = read_tflite_ops(tflite)
    model_issues = []
    if facts["n_subgraphs"] != 1:
        model_issues.append(f"{facts['n_subgraphs']} subgraphs (control flow is not supported)")
    too_new: list[dict[str, Any]] = []
    for op in ops:
        issue = version_issue(op.name, op.version, runtime)
        if issue:
            too_new.append(
                {"index": op.index, "op": op.name, "version": op.version, "limit": max_version(op.name, runtime), "reason": issue}
            )
    if too_new:  # the compiler stops at parsing: not one op maps, so there is no "first CPU op" either
        model_issues.insert(
            0, "edgetpu_compiler cannot parse the model: " + "; ".join(dict.fromkeys(str(t["reason"]) for t in too_new))
        )
    checks: list[OpCheck] = []
    first: OpCheck | None = None
    for op in ops:
        reasons = general_issues(op)
        rule, note = EDGETPU_OPS.get(op.name, (None, ""))
        if rule is None:
            reasons.insert(0, f"{op.name} is not in the EdgeTPU supported-op list")
        else:
            reasons.extend(rule(op))
        issue = version_issue(op.name, op.version, runtime)
        if issue:
            reasons.insert(0, issue)
        check = OpCheck(
            index=op.index,
            op=op.name,
            supported=not reasons,
            mapped=first is None and not reasons and not too_new,
            reasons=reasons,
            note=note,
            inputs=[t.brief() for t in op.inputs if not t.constant],
            outputs=[t.brief() for t in op.outputs],
            version=op.version,
            version_limit=max_version(op.name, runtime),
        )
        if first is None and reasons and not too_new:
            first = check
        checks.append(check)
    n = len(checks)
    n_mapped = sum(c.mapped for c in checks)
    # weights and biases: each constant buffer once (ops may share one)
    params = {t.buffer: t.nbytes for op in ops for t in op.inputs if t.constant}
    parameter_bytes = int(sum(params.values()))
    warnings = []
    if parameter_bytes > ON_CHIP_CACHE_BYTES:
        warnings.append(
            f"parameters {parameter_bytes / 1024**2:.2f} MiB exceed the {ON_CHIP_CACHE_BYTES / 1024**2:.0f} MiB on-chip cache: "
            "the rest streams from host memory on every inference (slower; not a failure)"
        )
    return EdgeTPUReport(
        model=str(tflite) if isinstance(tflite, (str, Path)) else "<bytes>",
        n_ops=n,
        n_supported=sum(c.supported for c in checks),
        n_mapped=n_mapped,
        mapped_fraction=(n_mapped / n) if n else 0.0,
        first_cpu_op=first,
        model_issues=model_issues,
        ops=checks,
        too_new_ops=too_new,
        parameter_bytes=parameter_bytes,
        warnings=warnings,
    )
