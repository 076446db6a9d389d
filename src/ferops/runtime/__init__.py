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
from ferops.runtime.decode import (
    FACE_SIZE,
    UNTRUSTED_FORMATS,
    ImageDecodeError,
    decode_image,
    open_image,
    prepare_face,
    prepare_faces,
)
from ferops.runtime.faces import Face, FaceDetector, FaceDetectorError, detect_faces
from ferops.runtime.predictor import SHIPPED_BUNDLE, FacePredictor
from ferops.runtime.tflite import TensorSpec, TFLiteModel, dequantize, quantize

__all__ = [
    "FACE_SIZE",
    "LABELS_FILE",
    "METADATA_FILE",
    "MODEL_FILE",
    "SHIPPED_BUNDLE",
    "UNTRUSTED_FORMATS",
    "BundleError",
    "BundleModel",
    "Face",
    "FaceDetector",
    "FaceDetectorError",
    "FacePredictor",
    "ImageDecodeError",
    "TFLiteModel",
    "TensorSpec",
    "decode_image",
    "dequantize",
    "detect_faces",
    "open_image",
    "prepare_face",
    "prepare_faces",
    "quantize",
    "softmax",
]
