"""A thin, torch-free wrapper around one LiteRT (TFLite) interpreter.

Only numpy and ``ai_edge_litert`` are imported here, so the same code runs on a device
(Raspberry Pi + Coral) and in the export stage, which uses it to score the fp32 and int8
TFLite files exactly as the device will.

Conventions: images are raw pixels in 0..255, ``[N, H, W]`` or ``[N, H, W, 1]``; the model
takes NHWC ``[1, H, W, 1]`` (static batch 1). Integer models are fed
``q = clip(round(x / scale) + zero_point)`` and their outputs are dequantised with
``(q - zero_point) * scale``, using the scale and zero point stored in the model itself.

EdgeTPU: :meth:`TFLiteModel.for_device` runs the compiled ``*_edgetpu.tflite`` through the EdgeTPU
delegate (``libedgetpu.so.1``, :func:`load_edgetpu_delegate`) when both are there, else the CPU model
with one logged notice; ``TFLiteModel.device`` says which (``"edgetpu"`` or ``"cpu"``).
"""

from __future__ import annotations

import ctypes
import logging
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["EDGETPU_LIBRARY", "TFLiteModel", "TensorSpec", "dequantize", "load_edgetpu_delegate", "quantize"]

log = logging.getLogger(__name__)

# Coral's runtime library per OS (coral.ai "Run inference on the Edge TPU with Python")
EDGETPU_LIBRARY = {"Darwin": "libedgetpu.1.dylib", "Windows": "edgetpu.dll"}.get(platform.system(), "libedgetpu.so.1")


def load_edgetpu_delegate(library: str = EDGETPU_LIBRARY, options: dict[str, Any] | None = None) -> tuple[Any | None, str]:
    """``(delegate, "")`` when the EdgeTPU delegate loads, else ``(None, why)``. Loading fails without
    the library and also without a device attached (libedgetpu opens the TPU when it loads)."""
    from ai_edge_litert.interpreter import load_delegate

    # Checked first: load_delegate on a missing library leaves a half-built Delegate whose __del__
    # prints a traceback.
    missing = _library_missing(library)
    if missing:
        return None, missing
    try:
        return load_delegate(library, options), ""
    except (OSError, ValueError, RuntimeError) as err:
        return None, f"{type(err).__name__}: {err}".strip()


def _library_missing(library: str) -> str:
    """Why ``library`` cannot be opened, or "" when it can."""
    try:
        ctypes.CDLL(library)
    except OSError as err:
        return f"OSError: {err}"
    return ""


@dataclass(frozen=True)
class TensorSpec:
    """Name, static shape, dtype and (per-tensor) quantisation of a model input or output."""

    name: str
    index: int
    shape: tuple[int, ...]
    dtype: np.dtype
    scale: float
    zero_point: int

    @property
    def quantized(self) -> bool:
        return np.issubdtype(self.dtype, np.integer) and self.scale != 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": np.dtype(self.dtype).name,
            "scale": float(self.scale),
            "zero_point": int(self.zero_point),
        }

    @classmethod
    def from_details(cls, d: dict[str, Any]) -> TensorSpec:
        scale, zero_point = d.get("quantization", (0.0, 0))
        params = d.get("quantization_parameters") or {}
        scales = np.asarray(params.get("scales", []))
        if scales.size > 1:
            raise ValueError(f"tensor {d['name']!r} is quantised per channel; model inputs/outputs must be per tensor")
        return cls(
            name=str(d["name"]),
            index=int(d["index"]),
            shape=tuple(int(s) for s in d["shape"]),
            dtype=np.dtype(d["dtype"]),
            scale=float(scale),
            zero_point=int(zero_point),
        )


def quantize(x: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """Float values -> the integer dtype of ``spec`` (round half to even, then clip)."""
    info = np.iinfo(spec.dtype)
    q = np.rint(np.asarray(x, dtype=np.float64) / spec.scale) + spec.zero_point
    return np.asarray(np.clip(q, info.min, info.max).astype(spec.dtype))


def dequantize(q: np.ndarray, spec: TensorSpec) -> np.ndarray:
    return ((np.asarray(q, dtype=np.float32) - np.float32(spec.zero_point)) * np.float32(spec.scale)).astype(np.float32)


class TFLiteModel:
    """One single-input, single-output image classifier in a .tflite file.

    ``predict_logits(images)`` returns float32 ``[N, C]`` model outputs (dequantised for
    integer models). ``invoke(x)`` runs one already-prepared input tensor and returns the raw
    output, for latency measurements.
    """

    def __init__(self, model_path: str | Path, num_threads: int = 1, delegates: list[Any] | None = None, device: str = "cpu"):
        from ai_edge_litert.interpreter import Interpreter

        self.path = Path(model_path)
        self.device = device  # where it runs: "cpu", or "edgetpu" with the EdgeTPU delegate
        if not self.path.is_file():
            raise FileNotFoundError(f"TFLite model not found: {self.path}")
        self._interpreter = Interpreter(
            model_path=str(self.path), num_threads=num_threads, experimental_delegates=delegates or None
        )
        self._interpreter.allocate_tensors()
        inputs = self._interpreter.get_input_details()
        outputs = self._interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ValueError(f"{self.path}: expected 1 input and 1 output, got {len(inputs)} and {len(outputs)}")
        self.input = TensorSpec.from_details(inputs[0])
        self.output = TensorSpec.from_details(outputs[0])
        if len(self.input.shape) != 4 or self.input.shape[0] != 1 or self.input.shape[-1] != 1:
            raise ValueError(f"{self.path}: expected an NHWC [1, H, W, 1] input, got {list(self.input.shape)}")

    @classmethod
    def for_device(cls, cpu_model: str | Path, edgetpu_model: str | Path | None = None, num_threads: int = 1) -> TFLiteModel:
        """``edgetpu_model`` (compiled by ``edgetpu_compiler``) through the EdgeTPU delegate when it is
        given, exists and the delegate loads; otherwise ``cpu_model`` on the CPU, with one logged notice
        saying why. The compiled file is never run without the delegate: its ``edgetpu-custom-op``
        has no CPU kernel."""
        if edgetpu_model is None or not Path(edgetpu_model).is_file():
            return cls(cpu_model, num_threads=num_threads)
        delegate, why = load_edgetpu_delegate()
        if delegate is not None:
            try:
                return cls(edgetpu_model, num_threads=num_threads, delegates=[delegate], device="edgetpu")
            except (RuntimeError, ValueError) as err:
                why = f"{Path(edgetpu_model).name} does not load with the EdgeTPU delegate: {err}"
        log.warning("EdgeTPU not used (%s); running %s on the CPU", why, Path(cpu_model).name)
        return cls(cpu_model, num_threads=num_threads)

    @property
    def image_size(self) -> tuple[int, int]:
        return self.input.shape[1], self.input.shape[2]

    @property
    def num_outputs(self) -> int:
        return int(np.prod(self.output.shape[1:]))

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """One image (raw 0..255 pixels, [H, W] or [H, W, 1]) -> the model's input tensor."""
        x = np.asarray(image).reshape(self.input.shape)
        if self.input.quantized:
            return quantize(x, self.input)
        return x.astype(self.input.dtype, copy=False)

    def invoke(self, x: np.ndarray) -> np.ndarray:
        """Run one prepared input tensor; returns the raw output tensor (copied)."""
        self._interpreter.set_tensor(self.input.index, x)
        self._interpreter.invoke()
        return np.asarray(self._interpreter.get_tensor(self.output.index).copy())

    def predict_logits(self, images: np.ndarray, progress: bool = False) -> np.ndarray:
        images = _as_image_batch(images, self.image_size)
        out = np.empty((images.shape[0], self.num_outputs), dtype=np.float32)
        rows = range(images.shape[0])
        if progress:
            from tqdm.auto import tqdm

            rows = tqdm(rows, desc=self.path.name, leave=False)
        for i in rows:
            raw = self.invoke(self.prepare(images[i])).reshape(-1)
            out[i] = dequantize(raw, self.output) if self.output.quantized else raw
        return out


def _as_image_batch(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """[N, H, W] / [N, H, W, 1] / [H, W] -> [N, H, W] (no copy when possible)."""
    arr = np.asarray(images)
    if arr.ndim == 4 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    elif arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or tuple(arr.shape[1:]) != tuple(size):
        raise ValueError(
            f"expected images [N, {size[0]}, {size[1]}] or [N, {size[0]}, {size[1]}, 1], got {list(np.shape(images))}"
        )
    return arr
