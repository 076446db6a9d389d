"""Lineage tags: which code, which data, which configuration produced a run."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def _git(repo_dir: str | Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo_dir, capture_output=True, text=True, check=True).stdout


def _stage_outputs(stage: Mapping[str, Any]) -> list[str]:
    paths = []
    for kind in ("outs", "metrics", "plots"):
        for entry in stage.get(kind) or []:
            paths.extend(entry.keys() if isinstance(entry, Mapping) else [entry])
    return [str(p).rstrip("/") for p in paths]


def dvc_managed_paths(root: str | Path = ".") -> list[str]:
    """Paths DVC writes during a pipeline run, relative to ``root``: dvc.lock and every stage's outs,
    metrics and plots in ``root``/dvc.yaml (nothing when there is no dvc.yaml)."""
    path = Path(root) / "dvc.yaml"
    if not path.is_file():
        return []
    import yaml

    try:
        stages = (yaml.safe_load(path.read_text()) or {}).get("stages") or {}
    except yaml.YAMLError:
        return ["dvc.lock"]
    return ["dvc.lock", *(p for stage in stages.values() if isinstance(stage, Mapping) for p in _stage_outputs(stage))]


def _changed_paths(top: str | Path) -> list[str]:
    """Tracked files that differ from HEAD (staged or not), relative to the repository top."""
    out = _git(top, "status", "--porcelain=v1", "-z", "--untracked-files=no")
    entries, paths = out.split("\0"), []
    i = 0
    while i < len(entries):
        entry = entries[i]
        i += 1
        if len(entry) < 4:
            continue
        paths.append(entry[3:])
        if entry[0] in "RC":  # renamed / copied: the original path follows
            paths.append(entries[i])
            i += 1
    return paths


# Composed by `dvc exp run -S ...` before the stages run; the run logs every param it holds.
PARAMS_FILE = "params.yaml"


def git_tags(repo_dir: str | Path = ".") -> dict[str, str]:
    """``git.commit``, and ``git.dirty``: whether any tracked file the run depends on differs from
    that commit. What DVC itself rewrites before and during a pipeline run (dvc.lock, the stages'
    outs, metrics and plots, e.g. the tracked reports/) does not count, so the first `make run` of
    a fresh clone is clean. ``git.dirty_files`` lists what does count (when dirty). params.yaml
    does not count either (`dvc exp run -S` rewrites it, and the run records every param); whether
    it differs from the commit is ``git.params_modified``."""
    try:
        commit = _git(repo_dir, "rev-parse", "HEAD").strip()
        top = _git(repo_dir, "rev-parse", "--show-toplevel").strip()
        changed = _changed_paths(top)
    except (subprocess.CalledProcessError, FileNotFoundError):
        return {"git.commit": "unknown", "git.dirty": "unknown"}
    managed = [*dvc_managed_paths(top), PARAMS_FILE]
    dirty = sorted(p for p in changed if not any(p == m or p.startswith(m + "/") for m in managed))
    tags = {
        "git.commit": commit,
        "git.dirty": str(bool(dirty)).lower(),
        "git.params_modified": str(PARAMS_FILE in changed).lower(),
    }
    if dirty:
        tags["git.dirty_files"] = ",".join(dirty)[:5000]  # MLflow's tag value limit is 8000
    return tags


def _upstream_stages(stage: str, stages: Mapping[str, Any]) -> list[str]:
    """The stages whose outputs ``stage`` depends on, transitively (in dvc.yaml order)."""
    outputs = {name: _stage_outputs(s) for name, s in stages.items() if isinstance(s, Mapping)}
    found: set[str] = set()
    todo = [stage]
    while todo:
        deps = [str(d).rstrip("/") for d in (stages.get(todo.pop(), {}) or {}).get("deps") or []]
        for name, outs in outputs.items():
            if name not in found and any(d == o or d.startswith(o + "/") or o.startswith(d + "/") for d in deps for o in outs):
                found.add(name)
                todo.append(name)
    found.discard(stage)
    return [name for name in stages if name in found]


def dvc_lock_tags(stage: str | None = None, root: str | Path | None = None) -> dict[str, str]:
    """Inside a DVC stage (``DVC_STAGE`` / ``DVC_ROOT`` in the environment, or given): ``dvc.stage``
    and ``dvc.lock.<upstream stage>``, a digest of each upstream stage's dvc.lock entry (its deps,
    params and outs hashes: the code, data and settings that produced this stage's inputs).
    Outside DVC: ``{}``."""
    stage = stage or os.environ.get("DVC_STAGE")
    if not stage:
        return {}
    root = Path(root or os.environ.get("DVC_ROOT") or ".")
    tags = {"dvc.stage": stage}
    import yaml

    try:
        stages = (yaml.safe_load((root / "dvc.yaml").read_text()) or {}).get("stages") or {}
        lock = (yaml.safe_load((root / "dvc.lock").read_text()) or {}).get("stages") or {}
    except (OSError, yaml.YAMLError):
        return tags
    for name in _upstream_stages(stage, stages):
        if name in lock:
            tags[f"dvc.lock.{name}"] = hashlib.sha256(json.dumps(lock[name], sort_keys=True, default=str).encode()).hexdigest()[
                :16
            ]
    return tags


def data_tags(dataset_name: str, fingerprint: str, class_names: list[str]) -> dict[str, str]:
    return {"data.name": dataset_name, "data.fingerprint": fingerprint, "data.class_map": ",".join(class_names)}


def config_hash(cfg: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()[:16]
