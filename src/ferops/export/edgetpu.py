"""EdgeTPU: compile with ``edgetpu_compiler`` when it is installed, and always a static compatibility check.

Static check (:func:`check_edgetpu`)
------------------------------------
Reads the int8 ``.tflite`` flatbuffer with the LiteRT schema (``ai_edge_litert.schema_py_generated``,
the same schema the interpreter uses; TensorFlow's copy is the fallback) - no interpreter, no
TensorFlow needed - and checks each operator, in execution order, against the EdgeTPU rules from the
Coral documentation ("TensorFlow models on the Edge TPU", supported operations, compiler v16):

- general: every non-constant tensor an op reads or writes is int8/uint8 (constants may also be
  int32/int64: biases, shapes, axes); static shapes (no -1 in ``shape_signature``); tensors of rank > 3
  have size 1 outside the 3 innermost dimensions (batch 1); no control flow (one subgraph);
- the op is in the supported-op table below, and meets its known limitations (fused activation,
  dilation, reduction axes, strides, Softmax size, ...).

The EdgeTPU compiler maps the graph up to the *first* op it cannot run; that op and everything after
it run on the CPU (one EdgeTPU subgraph). The report names that first CPU op and the share of ops
that would map (``ops before it / all ops``). The table is deliberately conservative: an op not in it
(e.g. HARD_SWISH, TRANSPOSE, DEQUANTIZE, GATHER) counts as a CPU op. When ``edgetpu_compiler`` is on
PATH its log is parsed (:func:`run_edgetpu_compiler`) and, being the authority, it decides the
compatibility gate.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

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


def _schema():
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:  # pragma: no cover - ai-edge-litert is a dependency
        from tensorflow.lite.python import schema_py_generated as schema
    return schema


# --------------------------------------------------------------------------------------- model reading
@dataclass
class TensorInfo:
    index: int
    name: str
    shape: list[int]
    shape_signature: list[int]
    dtype: str
    constant: bool
    data: np.ndarray | None = field(default=None, repr=False)

    def brief(self) -> str:
        return f"{self.name}{self.shape}:{self.dtype.lower()}"


@dataclass
class OpInfo:
    index: int
    name: str
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    options: dict[str, Any]


_NUMPY_OF = {
    "FLOAT32": np.float32,
    "FLOAT16": np.float16,
    "INT32": np.int32,
    "UINT8": np.uint8,
    "INT64": np.int64,
    "INT16": np.int16,
    "INT8": np.int8,
    "UINT32": np.uint32,
    "UINT16": np.uint16,
}


def read_tflite_ops(tflite: str | Path | bytes) -> tuple[list[OpInfo], dict[str, Any]]:
    """Operators of subgraph 0 in execution order, with their tensors and builtin options; plus model facts
    (``n_subgraphs``, ``inputs``, ``outputs``)."""
    schema = _schema()
    buf = Path(tflite).read_bytes() if isinstance(tflite, (str, Path)) else bytes(tflite)
    model = schema.ModelT.InitFromPackedBuf(bytearray(buf), 0)
    op_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    type_names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    graph = model.subgraphs[0]

    def tensor(i: int) -> TensorInfo:
        t = graph.tensors[i]
        dtype = type_names.get(t.type, str(t.type))
        data = None
        b = model.buffers[t.buffer] if model.buffers and t.buffer < len(model.buffers) else None
        raw = None if b is None else b.data
        constant = (raw is not None and len(raw) > 0) or (b is not None and (b.offset or 0) > 1)
        if raw is not None and len(raw) and dtype in _NUMPY_OF:
            data = np.frombuffer(np.asarray(raw, dtype=np.uint8).tobytes(), dtype=_NUMPY_OF[dtype])
        shape = [int(s) for s in (t.shape if t.shape is not None else [])]
        sig = [int(s) for s in t.shapeSignature] if t.shapeSignature is not None else list(shape)
        name = t.name.decode() if isinstance(t.name, bytes) else str(t.name)
        return TensorInfo(int(i), name, shape, sig, dtype, bool(constant), data)

    ops = []
    for k, op in enumerate(graph.operators or []):
        code = model.operatorCodes[op.opcodeIndex]
        builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
        name = op_names.get(builtin, f"BUILTIN_{builtin}")
        if name == "CUSTOM":
            custom = code.customCode.decode() if isinstance(code.customCode, bytes) else str(code.customCode)
            name = f"CUSTOM:{custom}"
        options = dict(vars(op.builtinOptions)) if op.builtinOptions is not None else {}
        ins = [tensor(i) for i in (op.inputs if op.inputs is not None else []) if i >= 0]
        outs = [tensor(i) for i in (op.outputs if op.outputs is not None else []) if i >= 0]
        ops.append(OpInfo(k, name, ins, outs, options))
    facts = {
        "n_subgraphs": len(model.subgraphs),
        "inputs": [asdict(tensor(i)) | {"data": None} for i in graph.inputs],
        "outputs": [asdict(tensor(i)) | {"data": None} for i in graph.outputs],
    }
    return ops, facts


# --------------------------------------------------------------------------------------- rules
_ACTIVATION_DTYPES = {"INT8", "UINT8"}
_CONSTANT_DTYPES = {"INT8", "UINT8", "INT32", "INT64"}


def _axes(op: OpInfo, which: int = 1) -> np.ndarray | None:
    if len(op.inputs) <= which or op.inputs[which].data is None:
        return None
    return op.inputs[which].data.astype(np.int64)


def _norm_axes(axes: np.ndarray, rank: int) -> set[int]:
    return {int(a) % rank for a in np.atleast_1d(axes)} if rank else set()


def _no_fused_activation(op: OpInfo) -> list[str]:
    act = op.options.get("fusedActivationFunction", 0)
    return [f"fused activation function {act} (must be NONE)"] if act else []


def _same_dilation(op: OpInfo) -> list[str]:
    h, w = op.options.get("dilationHFactor", 1), op.options.get("dilationWFactor", 1)
    return [f"dilation {h}x{w} differs between y and x"] if h != w else []


def _concatenation(op: OpInfo) -> list[str]:
    issues = _no_fused_activation(op)
    consts = [t for t in op.inputs if t.constant]
    if consts:
        if len(op.inputs) != 2:
            issues.append("a constant input is allowed only with exactly 2 inputs")
        elif any(t.data is None or np.any(t.data != 0) for t in consts):
            issues.append("a constant input must be all zeros (zero padding)")
    return issues


def _fully_connected(op: OpInfo) -> list[str]:
    issues = []
    if op.options.get("weightsFormat", 0) != 0:
        issues.append("only the DEFAULT weights format is supported")
    out = op.outputs[0].shape if op.outputs else []
    if sum(1 for d in out if d > 1) > 1:
        issues.append(f"output {out} is not one-dimensional")
    return issues


def _reduction(z_multiple_of_4: bool) -> Callable[[OpInfo], list[str]]:
    def rule(op: OpInfo) -> list[str]:
        axes = _axes(op)
        if axes is None:
            return ["reduction axes are not a compile-time constant"]
        shape = op.inputs[0].shape
        rank = len(shape)
        norm = _norm_axes(axes, rank)
        issues = []
        if rank >= 2 and 0 in norm:
            issues.append("reduction over the batch dimension")
        if z_multiple_of_4 and rank >= 3 and (rank - 1) in norm and shape[-1] % 4:
            issues.append(f"z-reduction over {shape[-1]} channels (must be a multiple of 4)")
        return issues

    return rule


def _not_on_batch_axis(axis_key: str | None = None, axis_input: int | None = None) -> Callable[[OpInfo], list[str]]:
    def rule(op: OpInfo) -> list[str]:
        if axis_key is not None:
            axis = op.options.get(axis_key, 0)
            rank = len(op.outputs[0].shape) if op.outputs else 1
        else:
            data = _axes(op, axis_input or 0)
            if data is None:
                return ["axis is not a compile-time constant"]
            axis = int(np.atleast_1d(data)[0])
            rank = len(op.inputs[1 if axis_input == 0 else 0].shape) if len(op.inputs) > 1 else 1
        return ["operates on the batch dimension"] if rank > 1 and axis % rank == 0 else []

    return rule


def _pad(op: OpInfo) -> list[str]:
    pads = _axes(op)
    if pads is None:
        return ["paddings are not a compile-time constant"]
    pads = pads.reshape(-1, 2)
    return ["padding in the batch dimension"] if len(pads) > 1 and np.any(pads[0] != 0) else []


def _strided_slice(op: OpInfo) -> list[str]:
    issues = []
    strides = _axes(op, 3)
    if strides is None or np.any(strides != 1):
        issues.append("strides must all be 1")
    if op.options.get("ellipsisMask", 0):
        issues.append("ellipsis_mask must be 0")
    if op.options.get("newAxisMask", 0):
        issues.append("new_axis_mask must be 0")
    return issues


def _softmax(op: OpInfo) -> list[str]:
    shape = op.inputs[0].shape
    n = int(np.prod(shape)) if shape else 1
    issues = []
    if sum(1 for d in shape if d > 1) > 1:
        issues.append(f"input {shape} is not one-dimensional")
    if n > 16000:
        issues.append(f"{n} elements (max 16000)")
    return issues


def _prelu(op: OpInfo) -> list[str]:
    alpha = op.inputs[1].shape if len(op.inputs) > 1 else []
    return ["alpha must be 1-D (only the innermost dimension > 1)"] if any(d > 1 for d in alpha[:-1]) else []


def _ok(op: OpInfo) -> list[str]:
    return []


# builtin name -> (rule, note). The note repeats Coral's caveat where the compiler may still refuse.
EDGETPU_OPS: dict[str, tuple[Callable[[OpInfo], list[str]], str]] = {
    "ADD": (_ok, ""),
    "AVERAGE_POOL_2D": (_no_fused_activation, ""),
    "CONCATENATION": (_concatenation, ""),
    "CONV_2D": (_same_dilation, ""),
    "DEPTHWISE_CONV_2D": (_same_dilation, ""),
    "EXPAND_DIMS": (_ok, ""),
    "FULLY_CONNECTED": (_fully_connected, ""),
    "L2_NORMALIZATION": (_ok, ""),
    "LOGISTIC": (_ok, ""),
    "UNIDIRECTIONAL_SEQUENCE_LSTM": (_ok, ""),
    "MAXIMUM": (_ok, ""),
    "MAX_POOL_2D": (_no_fused_activation, ""),
    "MEAN": (_reduction(z_multiple_of_4=True), ""),
    "MINIMUM": (_ok, ""),
    "MUL": (_ok, ""),
    "PACK": (_not_on_batch_axis(axis_key="axis"), ""),
    "PAD": (_pad, ""),
    "PRELU": (_prelu, ""),
    "QUANTIZE": (_ok, ""),
    "REDUCE_MAX": (_reduction(z_multiple_of_4=False), ""),
    "REDUCE_MIN": (_reduction(z_multiple_of_4=False), ""),
    "RELU": (_ok, ""),
    "RELU6": (_ok, ""),
    "RELU_N1_TO_1": (_ok, ""),
    "RESHAPE": (_ok, "certain reshapes of large tensors may not be mapped"),
    "RESIZE_BILINEAR": (_ok, "may not be mapped for some input/output sizes (precision)"),
    "RESIZE_NEAREST_NEIGHBOR": (_ok, "may not be mapped for some input/output sizes (precision)"),
    "RSQRT": (_ok, ""),
    "SLICE": (_ok, ""),
    "SOFTMAX": (_softmax, ""),
    "SPACE_TO_DEPTH": (_ok, ""),
    "SPLIT": (_not_on_batch_axis(axis_input=0), ""),
    "SQUARED_DIFFERENCE": (_ok, ""),
    "SQUEEZE": (_ok, ""),
    "STRIDED_SLICE": (_strided_slice, ""),
    "SUB": (_ok, ""),
    "SUM": (_reduction(z_multiple_of_4=True), ""),
    "TANH": (_ok, ""),
    "TRANSPOSE_CONV": (_ok, ""),
    "CUSTOM:edgetpu-custom-op": (_ok, "already compiled for the EdgeTPU"),
}


def _general_issues(op: OpInfo) -> list[str]:
    issues = []
    for t in op.inputs + op.outputs:
        allowed = _CONSTANT_DTYPES if t.constant else _ACTIVATION_DTYPES
        if t.dtype not in allowed:
            kind = "constant" if t.constant else "tensor"
            issues.append(f"{kind} {t.name!r} is {t.dtype} (EdgeTPU needs 8-bit quantised tensors)")
        if not t.constant:
            if any(d < 0 for d in t.shape_signature):
                issues.append(f"tensor {t.name!r} has a dynamic shape {t.shape_signature}")
            if len(t.shape) > 3 and any(d > 1 for d in t.shape[:-3]):
                issues.append(f"tensor {t.name!r} {t.shape}: only the 3 innermost dimensions may exceed 1 (batch must be 1)")
    return issues


# --------------------------------------------------------------------------------------- report
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
        reasons = _general_issues(op)
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


# --------------------------------------------------------------------------------------- compiler
def find_edgetpu_compiler(setting: str = "auto") -> str | None:
    """``"auto"``: ``edgetpu_compiler`` from PATH if there; ``"off"``: never; else an explicit path."""
    if setting in (None, "", "off", "none", False):
        return None
    if setting == "auto":
        return shutil.which("edgetpu_compiler")
    path = shutil.which(setting) or (setting if Path(setting).is_file() else None)
    if path is None:
        raise FileNotFoundError(f"edgetpu_compiler not found: {setting}")
    return path


_SIZE_UNITS = {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}


def _bytes(text: str) -> int | None:
    m = re.fullmatch(r"\s*([\d.]+)\s*(B|KiB|MiB|GiB)\s*", text)
    return int(round(float(m.group(1)) * _SIZE_UNITS[m.group(2)])) if m else None


def parse_compiler_log(text: str) -> dict[str, Any]:
    """Parse ``edgetpu_compiler -s`` output: version, op counts, memory, the per-operator table."""
    low = text.lower()
    out: dict[str, Any] = {"ok": "compiled successfully" in low or "successfully compiled" in low}
    patterns = {
        "version": r"Edge TPU Compiler version\s+(\S+)",
        "subgraphs": r"Number of Edge TPU subgraphs:\s*(\d+)",
        "total_ops": r"Total number of operations:\s*(\d+)",
        "ops_on_tpu": r"Number of operations that will run on Edge TPU:\s*(\d+)",
        "ops_on_cpu": r"Number of operations that will run on CPU:\s*(\d+)",
        "on_chip_memory_used": r"On-chip memory used for caching model parameters:\s*(.+)",
        "on_chip_memory_remaining": r"On-chip memory remaining for caching model parameters:\s*(.+)",
        "off_chip_memory_used": r"Off-chip memory used for streaming uncached model parameters:\s*(.+)",
    }
    for key, pat in patterns.items():
        m = re.search(pat, text)
        if not m:
            continue
        val = m.group(1).strip()
        if key.endswith("_memory_used") or key.endswith("_memory_remaining"):
            out[key] = val
            out[key + "_bytes"] = _bytes(val)
        elif key == "version":
            out[key] = val
        else:
            out[key] = int(val)
    operators = []
    for m in re.finditer(r"^([A-Z][A-Z0-9_]+)\s+(\d+)\s+(\S.*?)\s*$", text, flags=re.MULTILINE):
        status = m.group(3)
        operators.append({"op": m.group(1), "count": int(m.group(2)), "status": status, "mapped": status.startswith("Mapped to Edge TPU")})
    out["operators"] = operators
    if "ops_on_tpu" not in out and operators:  # fully mapped models print no "will run on" lines
        out["ops_on_tpu"] = sum(o["count"] for o in operators if o["mapped"])
        out["ops_on_cpu"] = sum(o["count"] for o in operators if not o["mapped"])
    elif "ops_on_tpu" not in out and out.get("total_ops") is not None and out["ok"]:
        out["ops_on_tpu"], out["ops_on_cpu"] = out["total_ops"], 0
    return out


def run_edgetpu_compiler(tflite_path: str | Path, out_dir: str | Path, compiler: str = "edgetpu_compiler", timeout_s: int = 300) -> dict[str, Any]:
    """Run ``edgetpu_compiler -s -o out_dir model.tflite``; returns :func:`parse_compiler_log` plus
    ``returncode``, ``log`` and ``compiled_model`` (path or None)."""
    tflite_path, out_dir = Path(tflite_path), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = [compiler, "-s", "-o", str(out_dir), str(tflite_path)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
        text = proc.stdout + ("\n" + proc.stderr if proc.stderr else "")
        code = proc.returncode
    except subprocess.TimeoutExpired:
        text, code = f"edgetpu_compiler timed out after {timeout_s} s", -1
    (out_dir / "edgetpu_compiler.log").write_text(text, encoding="utf-8")
    result = parse_compiler_log(text)
    result["ok"] = bool(result["ok"] and code == 0)
    compiled = out_dir / f"{tflite_path.stem}_edgetpu.tflite"
    result.update(returncode=code, log=text, compiled_model=str(compiled) if compiled.is_file() else None, command=cmd)
    return result
