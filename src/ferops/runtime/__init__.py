"""Torch-free inference on a deployment bundle: numpy + LiteRT (``ai_edge_litert``) + Pillow.

Nothing under ``ferops.runtime`` may import torch or tensorflow (a device runs it);
tests/runtime checks that in a fresh interpreter.
"""

from ferops.runtime.bundle import (
    LABELS_FILE,
    METADATA_FILE,
    MODEL_FILE,
    BundleError,
    BundleModel,
    softmax,
)
from ferops.runtime.preprocess import FACE_SIZE, prepare_face, prepare_faces
from ferops.runtime.tflite import TensorSpec, TFLiteModel, dequantize, quantize

__all__ = [
    "FACE_SIZE",
    "LABELS_FILE",
    "METADATA_FILE",
    "MODEL_FILE",
    "BundleError",
    "BundleModel",
    "TFLiteModel",
    "TensorSpec",
    "dequantize",
    "prepare_face",
    "prepare_faces",
    "quantize",
    "softmax",
]
