"""Which numeric precision a CPU training actually runs at.

bf16 autocast only pays on CPUs with native bf16 arithmetic (AVX-512 BF16 or AMX on x86, the ARMv8.6
BF16 extension): there it roughly doubles a step of our small CNNs (docs/results.md, "Training speed").
Elsewhere oneDNN emulates bf16, slower than fp32, so the CPU default asks for ``bf16-mixed`` and
:func:`training_precision` turns that into ``32-true`` with one notice rather than failing or crawling.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ferops.tracking.environment import cpu_info

__all__ = ["BF16_CPU_FLAGS", "cpu_has_native_bf16", "training_precision"]

log = logging.getLogger(__name__)

BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")  # x86 /proc/cpuinfo flags; "bf16": ARM Features


def cpu_has_native_bf16(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """True when the CPU reports a native bf16 instruction set."""
    _, flags = cpu_info(cpuinfo)
    return any(f in flags for f in BF16_CPU_FLAGS)


def training_precision(requested: str | int, accelerator: str = "cpu", cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """The Lightning ``precision`` to run: ``requested``, except bf16 on a CPU without native bf16,
    which falls back to ``32-true`` with a one-line warning."""
    precision = str(requested)
    if accelerator == "cpu" and precision.startswith("bf16") and not cpu_has_native_bf16(cpuinfo):
        log.warning(
            "precision %s requested but this CPU has no native bf16 (%s): training in fp32 (32-true)",
            precision,
            "/".join(BF16_CPU_FLAGS),
        )
        return "32-true"
    return precision
