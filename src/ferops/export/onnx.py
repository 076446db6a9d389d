"""PyTorch -> ONNX (pinned opset, static batch 1) and its parity check with ONNX Runtime.

The model is the deployable module: float ``[B, 1, 48, 48]`` raw pixels in 0..255 -> logits ``[B, C]``,
preprocessing inside.

Exporter (``exporter``): ``"torchscript"`` is the classic exporter (``dynamo=False``): fast, exactly
the opset asked for (17 by default), and what onnx2tf is most tested against. It traces shape
arithmetic as graph ops, though: timm's ``tf_*`` models (TF "same" padding computed from the input
size) and ``flatten`` leave ``Shape -> Gather -> ... -> Pad/Reshape`` chains and a symbolic batch
dimension that onnx2tf cannot turn into static NHWC ops. ``"dynamo"`` (``torch.export``) specialises
every shape to the static ``[1, 1, 48, 48]`` input, so those graphs come out as plain
Conv/Relu/Add/...; it needs opset >= 18 (the Pad adapter has no down-conversion to 17).
``"auto"`` (default) uses TorchScript and falls back to dynamo when the simplified graph is not
fully static. The exporter and opset used are stored in the ONNX ``metadata_props``
(``ferops.exporter``, see :func:`onnx_export_info`).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

__all__ = [
    "check_onnx",
    "export_onnx",
    "is_static",
    "onnx_export_info",
    "onnx_logits",
    "onnx_session",
    "simplify_onnx",
    "torch_logits",
]

log = logging.getLogger(__name__)

_EXPORTERS = ("auto", "torchscript", "dynamo")
DYNAMO_MIN_OPSET = 18


def export_onnx(
    model: nn.Module,
    path: str | Path,
    *,
    opset: int = 17,
    image_size: int = 48,
    input_name: str = "image",
    output_name: str = "logits",
    simplify: bool = True,
    exporter: str = "auto",
) -> Path:
    """Write ``model`` to ``path`` as ONNX with a static ``[1, 1, S, S]`` float input
    (:func:`simplify_onnx` when ``simplify``; exporter choice in the module docstring); runs the checker."""
    if exporter not in _EXPORTERS:
        raise ValueError(f"exporter must be one of {_EXPORTERS}, got {exporter!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    dummy = torch.full((1, 1, image_size, image_size), 127.0)
    names = {"input_names": [input_name], "output_names": [output_name]}
    used, used_opset = ("dynamo", max(opset, DYNAMO_MIN_OPSET)) if exporter == "dynamo" else ("torchscript", opset)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning)  # "legacy TorchScript-based exporter"
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)  # shape checks: the batch-1 shape is static
            warnings.filterwarnings("ignore", message="Constant folding")  # TorchScript: Slice steps != 1 left unfolded
            warnings.filterwarnings("ignore", category=FutureWarning)  # torch.export internals (pytree LeafSpec)
            if used == "torchscript":
                torch.onnx.export(
                    model, (dummy,), str(path), opset_version=opset, do_constant_folding=True, dynamo=False, **names
                )
                proto = onnx.load(str(path))
                if simplify:
                    proto = simplify_onnx(proto)
                if exporter == "auto" and not is_static(proto):
                    log.info(
                        "TorchScript ONNX graph keeps dynamic shape arithmetic: exporting again with dynamo (opset %d)",
                        max(opset, DYNAMO_MIN_OPSET),
                    )
                    used, used_opset = "dynamo", max(opset, DYNAMO_MIN_OPSET)
            if used == "dynamo":
                torch.onnx.export(
                    model,
                    (dummy,),
                    str(path),
                    opset_version=used_opset,
                    dynamo=True,
                    optimize=True,
                    verbose=False,
                    external_data=False,
                    **names,
                )
                proto = onnx.load(str(path))
                if simplify:
                    proto = simplify_onnx(proto)
    finally:
        model.train(was_training)
    onnx.helper.set_model_props(proto, {"ferops.exporter": used, "ferops.opset": str(used_opset)})
    onnx.save(proto, str(path))
    check_onnx(path, image_size=image_size, opset=used_opset)
    return path


def onnx_export_info(path: str | Path) -> dict[str, str]:
    """``{"exporter": "torchscript" | "dynamo", "opset": "17"}`` as written by :func:`export_onnx`."""
    props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    return {"exporter": props.get("ferops.exporter", "?"), "opset": props.get("ferops.opset", "?")}


def is_static(proto: onnx.ModelProto) -> bool:
    """True when every graph input/output dimension is a number and no ``Shape`` op is left."""
    for vi in list(proto.graph.input) + list(proto.graph.output):
        if any(not d.HasField("dim_value") for d in vi.type.tensor_type.shape.dim):
            return False
    return not any(n.op_type in ("Shape", "Size") for n in proto.graph.node)


def simplify_onnx(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Make the TorchScript exporter's graph easy for onnx2tf and the EdgeTPU; semantics unchanged.

    1. ``onnxscript.optimizer.optimize``: constant folding, including ``Shape`` of the static input
       (the exporter leaves ``Shape -> Slice -> Concat`` chains in front of ``Resize``);
    2. ``Expand`` to an all-ones constant shape of no higher rank than its input (what
       ``Tensor.repeat`` exports first) is an identity: removed (onnx2tf fails on it);
    3. ``Tile`` with constant repeats that repeat a single axis k times becomes ``Concat`` of k copies
       (TFLite TILE is not an EdgeTPU op, CONCATENATION is).
    Dead constants are dropped; the result passes ``onnx.checker``.
    """
    from onnx import helper, numpy_helper
    from onnxscript import optimizer

    loggers = [logging.getLogger(name) for name in ("onnxscript", "onnx_ir")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:  # their passes log every rewrite at INFO
        lg.setLevel(max(lg.level, logging.WARNING))
    try:
        proto = optimizer.optimize(proto)
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
    proto = onnx.shape_inference.infer_shapes(proto)
    graph = proto.graph
    consts: dict[str, np.ndarray] = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            consts[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
        elif node.op_type == "ConstantOfShape" and node.input[0] in consts:
            value = next((numpy_helper.to_array(a.t) for a in node.attribute if a.name == "value"), np.zeros(1, np.float32))
            consts[node.output[0]] = np.full(consts[node.input[0]].astype(np.int64), value.reshape(-1)[0])
    ranks = {
        vi.name: len(vi.type.tensor_type.shape.dim)
        for vi in list(graph.input) + list(graph.value_info) + list(graph.output)
        if vi.type.tensor_type.HasField("shape")
    }
    graph_outputs = {o.name for o in graph.output}
    alias: dict[str, str] = {}
    new_nodes = []
    for node in graph.node:
        ins = [alias.get(i, i) for i in node.input]
        del node.input[:]
        node.input.extend(ins)
        if node.op_type == "Expand" and node.input[1] in consts and node.output[0] not in graph_outputs:
            shape = consts[node.input[1]].reshape(-1)
            if np.all(shape == 1) and node.input[0] in ranks and shape.size <= ranks[node.input[0]]:
                alias[node.output[0]] = node.input[0]
                continue
        if node.op_type == "Tile" and node.input[1] in consts:
            reps = consts[node.input[1]].reshape(-1).astype(np.int64)
            axes = np.flatnonzero(reps != 1)
            if len(axes) == 1 and 1 < reps[axes[0]] <= 16:
                new_nodes.append(
                    helper.make_node(
                        "Concat",
                        [node.input[0]] * int(reps[axes[0]]),
                        list(node.output),
                        name=(node.name or "Tile") + "_as_concat",
                        axis=int(axes[0]),
                    )
                )
                continue
        new_nodes.append(node)
    # drop nodes whose outputs nobody reads any more (the folded constants)
    used = {o.name for o in graph.output}
    kept = []
    for node in reversed(new_nodes):
        if any(o in used for o in node.output) or not node.output:
            kept.append(node)
            used.update(node.input)
    del graph.node[:]
    graph.node.extend(reversed(kept))
    live_inits = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(live_inits)
    del graph.value_info[:]
    onnx.checker.check_model(proto, full_check=True)
    return proto


def check_onnx(path: str | Path, *, image_size: int = 48, opset: int | None = None) -> onnx.ModelProto:
    """``onnx.checker`` (full check, with shape inference) plus the deployment contract: one input
    float ``[1, 1, S, S]``, one 2-D output ``[1, C]``, the requested opset."""
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    if len(proto.graph.input) != 1 or len(proto.graph.output) != 1:
        raise ValueError(f"{path}: expected 1 input and 1 output, got {len(proto.graph.input)} and {len(proto.graph.output)}")
    in_shape = _static_shape(proto.graph.input[0])
    if in_shape != [1, 1, image_size, image_size]:
        raise ValueError(f"{path}: input shape {in_shape}, expected static [1, 1, {image_size}, {image_size}]")
    out_shape = _static_shape(proto.graph.output[0])
    if len(out_shape) != 2 or out_shape[0] != 1:
        raise ValueError(f"{path}: output shape {out_shape}, expected [1, C]")
    if opset is not None:
        got = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
        if got != opset:
            raise ValueError(f"{path}: opset {got}, expected {opset}")
    return proto


def _static_shape(value_info: onnx.ValueInfoProto) -> list[int | str]:
    dims = value_info.type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims]


def onnx_session(path: str | Path, threads: int = 1):
    """An ONNX Runtime CPU session with ``threads`` intra-op threads and sequential execution."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def onnx_logits(path_or_session, images: np.ndarray, progress: bool = False) -> np.ndarray:
    """Raw pixels uint8 ``[N, S, S]`` -> float32 logits ``[N, C]``, one image at a time (static batch 1)."""
    sess = onnx_session(path_or_session, threads=1) if isinstance(path_or_session, (str, Path)) else path_or_session
    name = sess.get_inputs()[0].name
    x = _nchw_float(images)
    rows = range(x.shape[0])
    if progress:
        from tqdm.auto import tqdm

        rows = tqdm(rows, desc="onnx", leave=False)
    outs = [sess.run(None, {name: x[i : i + 1]})[0].reshape(-1) for i in rows]
    return np.stack(outs).astype(np.float32) if outs else np.zeros((0, 0), np.float32)


@torch.no_grad()
def torch_logits(model: nn.Module, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Raw pixels uint8 ``[N, S, S]`` -> float32 logits ``[N, C]`` from the PyTorch module (eval mode)."""
    was_training = model.training
    model.eval()
    try:
        x = _nchw_float(images)
        outs = [model(torch.from_numpy(x[i : i + batch_size])).float().numpy() for i in range(0, x.shape[0], batch_size)]
    finally:
        model.train(was_training)
    return np.concatenate(outs).astype(np.float32)


def _nchw_float(images: np.ndarray) -> np.ndarray:
    arr = np.asarray(images)
    if arr.ndim == 4 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 3:
        raise ValueError(f"expected images [N, H, W], got shape {list(arr.shape)}")
    return np.ascontiguousarray(arr[:, None].astype(np.float32))
