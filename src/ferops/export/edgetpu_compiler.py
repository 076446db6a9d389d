"""Coral's ``edgetpu_compiler``: find it, run it on an int8 ``.tflite``, parse its log.

When it ran, its verdict is the authority on EdgeTPU compatibility
(``ferops.export.edgetpu.EdgeTPUReport.compatible``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

__all__ = ["find_edgetpu_compiler", "parse_compiler_log", "run_edgetpu_compiler"]


def find_edgetpu_compiler(setting: str = "auto") -> str | None:
    """``"auto"``: ``edgetpu_compiler`` from PATH if there; ``"off"``: never; else an explicit path."""
    if setting in (None, "", "off", "none", False):
        return None
    if setting == "auto":
        return shutil.which("edgetpu_compiler")
    path = shutil.which(setting) or (setting if Path(setting).is_file() else None)
    if path is None:
        raise FileNotFoundError(f"edgetpu_compiler not found: {setting}")
    return path


_SIZE_UNITS = {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}


def _bytes(text: str) -> int | None:
    m = re.fullmatch(r"\s*([\d.]+)\s*(B|KiB|MiB|GiB)\s*", text)
    return round(float(m.group(1)) * _SIZE_UNITS[m.group(2)]) if m else None


def parse_compiler_log(text: str) -> dict[str, Any]:
    """Parse ``edgetpu_compiler -s`` output: version, op counts, memory, the per-operator table."""
    low = text.lower()
    out: dict[str, Any] = {"ok": "compiled successfully" in low or "successfully compiled" in low}
    patterns = {
        "version": r"Edge TPU Compiler version\s+(\S+)",
        "subgraphs": r"Number of Edge TPU subgraphs:\s*(\d+)",
        "total_ops": r"Total number of operations:\s*(\d+)",
        "ops_on_tpu": r"Number of operations that will run on Edge TPU:\s*(\d+)",
        "ops_on_cpu": r"Number of operations that will run on CPU:\s*(\d+)",
        "on_chip_memory_used": r"On-chip memory used for caching model parameters:\s*(.+)",
        "on_chip_memory_remaining": r"On-chip memory remaining for caching model parameters:\s*(.+)",
        "off_chip_memory_used": r"Off-chip memory used for streaming uncached model parameters:\s*(.+)",
    }
    for key, pat in patterns.items():
        m = re.search(pat, text)
        if not m:
            continue
        val = m.group(1).strip()
        if key.endswith("_memory_used") or key.endswith("_memory_remaining"):
            out[key] = val
            out[key + "_bytes"] = _bytes(val)
        elif key == "version":
            out[key] = val
        else:
            out[key] = int(val)
    operators = []
    for m in re.finditer(r"^([A-Z][A-Z0-9_]+)\s+(\d+)\s+(\S.*?)\s*$", text, flags=re.MULTILINE):
        status = m.group(3)
        operators.append(
            {"op": m.group(1), "count": int(m.group(2)), "status": status, "mapped": status.startswith("Mapped to Edge TPU")}
        )
    out["operators"] = operators
    if "ops_on_tpu" not in out and operators:  # fully mapped models print no "will run on" lines
        out["ops_on_tpu"] = sum(o["count"] for o in operators if o["mapped"])
        out["ops_on_cpu"] = sum(o["count"] for o in operators if not o["mapped"])
    elif "ops_on_tpu" not in out and out.get("total_ops") is not None and out["ok"]:
        out["ops_on_tpu"], out["ops_on_cpu"] = out["total_ops"], 0
    return out


def run_edgetpu_compiler(
    tflite_path: str | Path, out_dir: str | Path, compiler: str = "edgetpu_compiler", timeout_s: int = 300
) -> dict[str, Any]:
    """Run ``edgetpu_compiler -s -o out_dir model.tflite``; returns :func:`parse_compiler_log` plus
    ``returncode``, ``log`` and ``compiled_model`` (path or None)."""
    tflite_path, out_dir = Path(tflite_path), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = [compiler, "-s", "-o", str(out_dir), str(tflite_path)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
        text = proc.stdout + ("\n" + proc.stderr if proc.stderr else "")
        code = proc.returncode
    except subprocess.TimeoutExpired:
        text, code = f"edgetpu_compiler timed out after {timeout_s} s", -1
    (out_dir / "edgetpu_compiler.log").write_text(text, encoding="utf-8")
    result = parse_compiler_log(text)
    result["ok"] = bool(result["ok"] and code == 0)
    compiled = out_dir / f"{tflite_path.stem}_edgetpu.tflite"
    result.update(returncode=code, log=text, compiled_model=str(compiled) if compiled.is_file() else None, command=cmd)
    return result
