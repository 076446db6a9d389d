"""EdgeTPU rules: which TFLite operators the EdgeTPU compiler maps, and their known limitations.

From the Coral documentation ("TensorFlow models on the Edge TPU", supported operations, compiler v16):

- general (:func:`general_issues`): every non-constant tensor an op reads or writes is int8/uint8
  (constants may also be int32/int64: biases, shapes, axes); static shapes (no -1 in
  ``shape_signature``); tensors of rank > 3 have size 1 outside the 3 innermost dimensions (batch 1);
- per op (:data:`EDGETPU_OPS`): the op is in the supported-op table and meets its limitations (fused
  activation, dilation, reduction axes, strides, Softmax size, ...). The table is deliberately
  conservative: an op not in it (e.g. HARD_SWISH, TRANSPOSE, DEQUANTIZE, GATHER) counts as a CPU op.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ferops.export.tflite_reader import OpInfo

__all__ = ["EDGETPU_OPS", "general_issues"]


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


def general_issues(op: OpInfo) -> list[str]:
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
