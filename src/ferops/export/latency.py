"""CPU latency per face: batch 1, a fixed number of threads, median and p95 over N timed runs.

Each format is timed on the same prepared input with its own runtime: PyTorch (eager, no_grad),
ONNX Runtime (CPU provider, sequential) and LiteRT for the fp32 and int8 TFLite files (default
XNNPACK CPU delegate). Only the forward call is timed (for TFLite: set input, invoke, read output);
conversion of the image into the input tensor is done once beforehand.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

__all__ = ["latency_stats", "onnx_latency", "tflite_latency", "time_calls", "torch_latency"]


def latency_stats(seconds: np.ndarray | list[float]) -> dict[str, float]:
    ms = np.asarray(seconds, dtype=np.float64) * 1e3
    return {
        "median_ms": float(np.median(ms)),
        "p95_ms": float(np.percentile(ms, 95)),
        "mean_ms": float(ms.mean()),
        "min_ms": float(ms.min()),
        "n_runs": int(ms.size),
    }


def time_calls(fn: Callable[[], object], n_runs: int = 200, n_warmup: int = 20) -> dict[str, float]:
    for _ in range(n_warmup):
        fn()
    times = np.empty(n_runs)
    for i in range(n_runs):
        t0 = time.perf_counter()
        fn()
        times[i] = time.perf_counter() - t0
    return latency_stats(times)


def _face(image: np.ndarray | None, size: int) -> np.ndarray:
    if image is None:
        return np.random.default_rng(0).integers(0, 256, (size, size), dtype=np.uint8)
    arr = np.asarray(image)
    return arr.reshape(arr.shape[-3], arr.shape[-2]) if arr.ndim == 4 else arr.reshape(arr.shape[-2], arr.shape[-1])


def torch_latency(
    model, image: np.ndarray | None = None, *, image_size: int = 48, threads: int = 1, n_runs: int = 200, n_warmup: int = 20
) -> dict[str, float]:
    import torch

    x = torch.from_numpy(_face(image, image_size).astype(np.float32)[None, None].copy())
    old_threads = torch.get_num_threads()
    was_training = model.training
    model.eval()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            return time_calls(lambda: model(x), n_runs, n_warmup)
    finally:
        torch.set_num_threads(old_threads)
        model.train(was_training)


def onnx_latency(
    path: str | Path,
    image: np.ndarray | None = None,
    *,
    image_size: int = 48,
    threads: int = 1,
    n_runs: int = 200,
    n_warmup: int = 20,
) -> dict[str, float]:
    from ferops.export.onnx import onnx_session

    sess = onnx_session(path, threads=threads)
    name = sess.get_inputs()[0].name
    feed = {name: _face(image, image_size).astype(np.float32)[None, None].copy()}
    return time_calls(lambda: sess.run(None, feed), n_runs, n_warmup)


def tflite_latency(
    path: str | Path,
    image: np.ndarray | None = None,
    *,
    image_size: int = 48,
    threads: int = 1,
    n_runs: int = 200,
    n_warmup: int = 20,
) -> dict[str, float]:
    from ferops.runtime.tflite import TFLiteModel

    model = TFLiteModel(path, num_threads=threads)
    x = model.prepare(_face(image, model.image_size[0]))
    return time_calls(lambda: model.invoke(x), n_runs, n_warmup)
