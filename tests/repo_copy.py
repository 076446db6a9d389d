"""A git + DVC copy of the project for tests that run `dvc repro` for real (tests/stages)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(cmd: list[str], cwd: Path, env: dict, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


def copy_repo(tmp: Path, dvc_yaml: Path | None = None) -> tuple[Path, dict]:
    """Copy the working tree's files (tracked and untracked, not ignored; no reports/ or dvc.lock) to
    ``tmp/repo``, committed in a fresh git repo, with its own MLflow store under ``tmp/mlruns``.
    ``dvc_yaml`` replaces the copy's dvc.yaml. Returns (repo dir, env running the copy's code)."""
    dst = tmp / "repo"
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for f in files:
        src = ROOT / f
        if src.is_file() and not f.startswith(("reports/", "dvc.lock")):
            (dst / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / f)
    if dvc_yaml is not None:
        shutil.copy2(dvc_yaml, dst / "dvc.yaml")
    (tmp / "mlruns").mkdir()
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlruns' / 'mlflow.db'}",
        "PYTHONPATH": str(dst / "src"),  # the copy's code, not the checkout's
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    for cmd in (
        ["git", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy"],
    ):
        run(cmd, dst, env)
    return dst, env
