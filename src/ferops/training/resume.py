"""Resuming a training that was killed (a preempted job, a closed laptop) from its ``last.ckpt``.

A run directory holds ``run_state.json`` (the MLflow run id, the config hash, ``finished``) next
to ``checkpoints/``. ``resume=true`` continues the newest unfinished run directory under the
runs root (``outputs/runs`` for ``python -m ferops.train``), ``resume=PATH`` the one at PATH (a run
directory or its ``last.ckpt``). Lightning restores weights, optimiser, scheduler, loop counters
and callback states from the checkpoint; the module reseeds every epoch from (seed, epoch), so the
rest of the run replays what the uninterrupted run would have done.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RUN_STATE = "run_state.json"
LAST_CKPT = Path("checkpoints") / "last.ckpt"
# What decides the rest of a training: a resumption must match the killed run on these (export,
# registry and tracking settings may change in between: they act after training).
TRAINING_KEYS = ("seed", "data", "model", "loss", "optim", "trainer", "callbacks", "qat", "distill")


@dataclass
class ResumePoint:
    checkpoint: Path
    run_id: str


def read_state(run_dir: str | Path) -> dict[str, Any] | None:
    path = Path(run_dir) / RUN_STATE
    return json.loads(path.read_text()) if path.is_file() else None


def write_state(run_dir: str | Path, **state: Any) -> None:
    path = Path(run_dir) / RUN_STATE
    old = read_state(run_dir) or {}
    path.write_text(json.dumps({**old, **state}, indent=2, sort_keys=True) + "\n")


def resumable(run_dir: str | Path) -> bool:
    state = read_state(run_dir)
    return bool(state) and not state.get("finished") and (Path(run_dir) / LAST_CKPT).is_file()


def find_run_dir(resume: Any, runs_root: str | Path) -> Path | None:
    """The run directory ``resume`` names: None for false; the newest resumable directory under
    ``runs_root`` for true; a directory or checkpoint path otherwise."""
    if resume in (None, False) or str(resume).lower() in ("false", "none", ""):
        return None
    if resume is True or str(resume).lower() == "true":
        candidates = [p.parent.parent for p in Path(runs_root).glob(f"*/{LAST_CKPT}") if resumable(p.parent.parent)]
        if not candidates:
            raise FileNotFoundError(f"resume=true: no unfinished run with {LAST_CKPT} under {runs_root}")
        return max(candidates, key=lambda d: (d / LAST_CKPT).stat().st_mtime)
    path = Path(str(resume))
    run_dir = path.parent.parent if path.suffix == ".ckpt" else path
    if not (run_dir / LAST_CKPT).is_file():
        raise FileNotFoundError(f"resume={resume}: no {LAST_CKPT} in {run_dir}")
    return run_dir


def resume_point(run_dir: Path, config_hash: str) -> ResumePoint | None:
    """Where to continue the run in ``run_dir``, or None when it has nothing to resume.

    Refuses a checkpoint of another configuration: its rest would not be that run's rest."""
    if not resumable(run_dir):
        return None
    state = read_state(run_dir) or {}
    if state.get("config_hash") != config_hash:
        raise ValueError(
            f"{run_dir}: its run used config {state.get('config_hash')}, this one is {config_hash}; "
            "resume only with the configuration the run started with (or start afresh with resume=false)"
        )
    return ResumePoint(checkpoint=run_dir / LAST_CKPT, run_id=str(state["run_id"]))
