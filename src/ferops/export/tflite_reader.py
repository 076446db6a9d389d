"""Read a ``.tflite`` flatbuffer without an interpreter or TensorFlow: the operators of subgraph 0 in
execution order, with their operator version, their tensors (dtype, shape, shape signature, constant
data and its size in bytes) and builtin options.

Uses the LiteRT schema (``ai_edge_litert.schema_py_generated``, the one the interpreter uses;
TensorFlow's copy is the fallback).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["OpInfo", "TensorInfo", "read_tflite_ops"]


def _schema():
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:  # pragma: no cover - ai-edge-litert is a dependency
        from tensorflow.lite.python import schema_py_generated as schema
    return schema


@dataclass
class TensorInfo:
    index: int
    name: str
    shape: list[int]
    shape_signature: list[int]
    dtype: str
    constant: bool
    data: np.ndarray | None = field(default=None, repr=False)
    buffer: int = 0
    nbytes: int = 0  # bytes of constant data (weights, biases); 0 for activations

    def brief(self) -> str:
        return f"{self.name}{self.shape}:{self.dtype.lower()}"


@dataclass
class OpInfo:
    index: int
    name: str
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    options: dict[str, Any]
    version: int = 1  # the operator code's version: what an older TF Lite runtime may not know


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
        # buffers past 2 GiB live outside the flatbuffer (offset/size); the rest inline in `data`
        nbytes = len(raw) if raw is not None and len(raw) else (int(b.size or 0) if constant and b is not None else 0)
        if raw is not None and len(raw) and dtype in _NUMPY_OF:
            data = np.frombuffer(np.asarray(raw, dtype=np.uint8).tobytes(), dtype=_NUMPY_OF[dtype])
        shape = [int(s) for s in (t.shape if t.shape is not None else [])]
        sig = [int(s) for s in t.shapeSignature] if t.shapeSignature is not None else list(shape)
        name = t.name.decode() if isinstance(t.name, bytes) else str(t.name)
        return TensorInfo(int(i), name, shape, sig, dtype, bool(constant), data, int(t.buffer), nbytes)

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
        ops.append(OpInfo(k, name, ins, outs, options, int(code.version or 1)))
    facts = {
        "n_subgraphs": len(model.subgraphs),
        "inputs": [asdict(tensor(i)) | {"data": None} for i in graph.inputs],
        "outputs": [asdict(tensor(i)) | {"data": None} for i in graph.outputs],
    }
    return ops, facts
