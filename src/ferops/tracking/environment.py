"""Environment tags: the machine and the library versions a run used.

Timings and int8 results depend on them (AVX-512 BF16 / VNNI / AMX change the kernels torch and
TFLite pick; onnx2tf and TensorFlow versions change the converted graph), so every run records
them. Versions are read from the installed package metadata: nothing heavy is imported here
(TensorFlow in particular is not).
"""

from __future__ import annotations

import os
import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

# Distributions whose version is recorded (first installed name of each tuple).
PACKAGES: dict[str, tuple[str, ...]] = {
    "torch": ("torch",),
    "lightning": ("lightning",),
    "timm": ("timm",),
    "tensorflow": ("tensorflow", "tensorflow-cpu", "tensorflow-macos", "tf-nightly"),
    "onnx2tf": ("onnx2tf",),
    "onnx": ("onnx",),
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu"),
    "ai-edge-litert": ("ai-edge-litert",),
    "mlflow": ("mlflow", "mlflow-skinny"),
    "numpy": ("numpy",),
}
# CPU features that change which kernels run (x86 /proc/cpuinfo "flags", ARM "Features").
CPU_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "avx_vnni",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
    "asimd",
    "asimddp",
    "sve",
    "sve2",
    "bf16",
    "i8mm",
)
UNKNOWN = "unknown"


def package_version(*names: str) -> str:
    for name in names:
        try:
            return version(name)
        except PackageNotFoundError:
            continue
    return "not installed"


def cpu_info(cpuinfo: str | Path = "/proc/cpuinfo") -> tuple[str, list[str]]:
    """(CPU model, the CPU_FLAGS it has, in CPU_FLAGS order); (platform.processor(), []) without
    /proc/cpuinfo."""
    model, flags = "", set()
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if not model and key in ("model name", "hardware", "cpu model", "processor") and not value.strip().isdigit():
            model = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = set(value.split())
    model = model or platform.processor() or platform.machine() or UNKNOWN
    return model, [f for f in CPU_FLAGS if f in flags]


def _torch_tags(accelerator: str | None) -> dict[str, str]:
    """Threads and accelerator from torch, when the process already imported it (not imported here)."""
    torch = sys.modules.get("torch")
    tags: dict[str, str] = {}
    detected = "cpu"
    if torch is not None:
        tags["env.threads"] = str(torch.get_num_threads())
        tags["env.interop_threads"] = str(torch.get_num_interop_threads())
        try:
            if torch.cuda.is_available():
                names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
                detected = "cuda"
                tags["env.gpu"] = ", ".join(names)
                tags["env.gpu_count"] = str(len(names))
                tags["env.cuda"] = str(torch.version.cuda)
            elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
                detected = "mps"
        except Exception:  # a broken driver must not fail a run
            pass
    else:
        tags["env.threads"] = os.environ.get("OMP_NUM_THREADS", UNKNOWN)
    # what the run used: the requested accelerator, resolved to the device found for gpu/auto
    if accelerator in (None, "", "auto") or (accelerator != "cpu" and detected != "cpu"):
        tags["env.accelerator"] = detected
    else:
        tags["env.accelerator"] = str(accelerator)
    return tags


def environment_tags(accelerator: str | None = None, cpuinfo: str | Path = "/proc/cpuinfo") -> dict[str, str]:
    """``env.*`` tags: CPU model and the flags that matter, cores, threads, accelerator (``accelerator``:
    what the trainer was asked for, e.g. ``cfg.trainer.accelerator``; detected when None/auto),
    Python and platform, and the versions of torch, lightning, timm, tensorflow, onnx2tf, ..."""
    model, flags = cpu_info(cpuinfo)
    tags = {
        "env.cpu": model,
        "env.cpu_flags": ",".join(flags) or "none",
        "env.avx512_bf16": str("avx512_bf16" in flags).lower(),
        "env.cpu_count": str(os.cpu_count() or UNKNOWN),
        "env.python": platform.python_version(),
        "env.platform": platform.platform(),
    }
    if hasattr(os, "sched_getaffinity"):
        tags["env.cpu_affinity"] = str(len(os.sched_getaffinity(0)))
    if os.environ.get("OMP_NUM_THREADS"):
        tags["env.omp_num_threads"] = os.environ["OMP_NUM_THREADS"]
    tags.update(_torch_tags(accelerator))
    for key, names in PACKAGES.items():
        tags[f"env.{key}"] = package_version(*names)
    return {k: v[:5000] for k, v in tags.items()}
