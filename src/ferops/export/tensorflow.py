"""ONNX -> TensorFlow SavedModel (NHWC) and fp32 TFLite with onnx2tf.

Why onnx2tf and not onnx-tf
---------------------------
The EdgeTPU runs a graph only up to its first unsupported op; everything after it runs on the CPU.
onnx-tf (``onnx_tf.backend.prepare(...).export_graph``) converts op by op and keeps PyTorch's NCHW
layout, wrapping each convolution in a pair of TRANSPOSE ops (NCHW <-> NHWC). The int8 TFLite it
leads to is full of TRANSPOSE ops between the convolutions, so the EdgeTPU mapping stops early.
onnx2tf rewrites the whole graph to NHWC once (input ``[1, 48, 48, 1]``) and emits plain
CONV_2D / DEPTHWISE_CONV_2D / ADD / MEAN / POOL / FULLY_CONNECTED, so the full-int8 model maps
end to end (see ``ferops.export.edgetpu``).

onnx-tf cannot even be offered as an optional converter in this environment: its last release
(1.10.0, 2022, project archived) does not import with onnx 1.23 (``from onnx import mapping``:
``ImportError`` - the module was removed from onnx), and it requires tensorflow-addons, whose last
release (0.23, end of life) supports TF 2.13-2.15 only and fails to import with TF 2.21 / Keras 3
(``ModuleNotFoundError: keras.src.engine``). Pinning onnx < 1.16 and TF 2.15 would break onnx2tf,
tf-keras 2.21 and ai-edge-litert in the same environment; a separate TF 2.15 environment converts,
but with the transposes described above.

What we use from onnx2tf: the SavedModel (signature ``serving_default``, NHWC input) and its
``*_float32.tflite``. Its own int8 outputs are not used (see ``ferops.export.tflite`` for why).
onnxsim is not run (``not_use_onnxsim=True``): it is not a dependency; ``ferops.export.onnx.simplify_onnx``
(onnxscript's optimizer plus two rewrites) has already folded the graph onnx2tf receives.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TensorFlowArtifacts", "onnx_to_tensorflow"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TensorFlowArtifacts:
    saved_model_dir: Path
    float32_tflite: Path


def onnx_to_tensorflow(
    onnx_path: str | Path, out_dir: str | Path, *, float32_tflite: str | Path | None = None
) -> TensorFlowArtifacts:
    """Convert ``onnx_path`` with onnx2tf into ``out_dir`` (a SavedModel directory).

    The fp32 TFLite that onnx2tf writes next to the SavedModel is moved to ``float32_tflite``
    (default ``<out_dir>/../model_fp32.tflite``); the fp16 variant is removed.
    """
    onnx_path, out_dir = Path(onnx_path), Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import onnx2tf

    onnx2tf.convert(
        input_onnx_file_path=str(onnx_path),
        output_folder_path=str(out_dir),
        not_use_onnxsim=True,
        non_verbose=True,
        verbosity="error",
    )
    stem = onnx_path.stem
    produced = out_dir / f"{stem}_float32.tflite"
    if not (out_dir / "saved_model.pb").is_file() or not produced.is_file():
        raise RuntimeError(f"onnx2tf did not write a SavedModel and {produced.name} into {out_dir}")
    target = Path(float32_tflite) if float32_tflite is not None else out_dir.parent / "model_fp32.tflite"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(produced), str(target))
    (out_dir / f"{stem}_float16.tflite").unlink(missing_ok=True)
    log.debug("onnx2tf: %s -> %s, %s", onnx_path, out_dir, target)
    return TensorFlowArtifacts(saved_model_dir=out_dir, float32_tflite=target)
