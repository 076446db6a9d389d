"""Concurrent registry callers for the tests: N worker processes (race_worker.py) released at once,
and the checks of what the registry looks like afterwards. Used by tests/registry/test_concurrency.py
and, against PostgreSQL behind a tracking server, by tests/sweeps/test_postgres_server.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORKER = HERE / "race_worker.py"

# (int8.macro_f1 on val, export gates passed) of the versions the race promotes; the best one fails its gates
RACE_VERSIONS = [(0.45, True), (0.55, True), (0.70, False), (0.50, True)]
INITIAL_F1 = 0.40


@dataclass
class WorkerResult:
    arg: str
    returncode: int
    stdout: str
    stderr: str

    @property
    def decision(self) -> dict | None:
        lines = [ln for ln in self.stdout.splitlines() if ln.startswith("{")]
        if not lines:
            return None
        d = json.loads(lines[-1])
        if "promotion" in d:  # register_stage's result: the decision on the version it registered
            d = {**(d["promotion"] or {}), "registered": d["version"]}
        return d


def run_workers(mode: str, uri: str, name: str, args: list[str], tmp: Path, timeout: float = 300) -> list[WorkerResult]:
    """Start one worker per arg, wait until all have imported and connected, release them together."""
    tmp.mkdir(parents=True, exist_ok=True)
    go = tmp / "go"
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": uri,
        "OMP_NUM_THREADS": "1",
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "CUDA_VISIBLE_DEVICES": "",
    }
    env.pop("PYTEST_CURRENT_TEST", None)
    procs = []
    for i, arg in enumerate(args):
        ready = tmp / f"ready{i}"
        p = subprocess.Popen(
            [sys.executable, str(WORKER), mode, uri, name, arg, str(ready), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        procs.append((arg, ready, p))
    deadline = time.monotonic() + timeout
    while not all(r.exists() or p.poll() is not None for _, r, p in procs):
        if time.monotonic() > deadline:
            break
        time.sleep(0.01)
    go.touch()
    results = []
    for arg, _, p in procs:
        try:
            out, err = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
        results.append(WorkerResult(arg, p.returncode, out, err))
    return results


def make_versions(
    client, name: str, run_id: str, source: str, values: list[tuple[float, bool]], fingerprint: str = "fp-race"
) -> list[str]:
    """Registered versions sharing one model source (cheap), tagged like register_model's."""
    from ferops.registry import tags as T

    try:
        client.get_registered_model(name)
    except Exception:
        client.create_registered_model(name)
    out = []
    for f1, gates in values:
        tags = {
            T.INT8_MACRO_F1: str(f1),
            T.EXPORT_GATES: str(gates).lower(),
            T.DATA_FINGERPRINT: fingerprint,
            "split.val_digest": "race-val-digest",
            "export.eval_split": "val",
        }
        out.append(str(client.create_model_version(name, source=source, run_id=run_id, tags=tags).version))
    return out


def check_outcome(client, name: str, results: list[WorkerResult], initial: str | None) -> dict:
    """No worker failed; `champion` is the best gate-passing version; `previous-champion` and the
    `promotion.previous_champion` tags form one chain back to `initial` (None: to the first
    champion), through exactly the versions that were promoted, each better than the one before
    it. Returns a summary."""
    from ferops.registry import tags as T
    from ferops.registry.config import Gates
    from ferops.registry.promote import check_gates

    failed = [f"{r.arg}: rc {r.returncode}\n{r.stderr[-3000:]}" for r in results if r.returncode != 0 or r.decision is None]
    assert not failed, "\n".join(failed)
    versions = {str(v.version): dict(v.tags) for v in client.search_model_versions(f"name = '{name}'")}
    value = {v: float(t[T.INT8_MACRO_F1]) for v, t in versions.items() if T.INT8_MACRO_F1 in t}
    passing = [v for v, t in versions.items() if v in value and not check_gates(t, Gates())]
    best = max(passing, key=lambda v: value[v])
    aliases = {k: str(v) for k, v in client.get_registered_model(name).aliases.items()}
    assert aliases.get("champion") == best, (aliases, value, [r.decision for r in results])
    chain, v = [best], best
    while versions[v].get(T.PREVIOUS_CHAMPION):
        prev = versions[v][T.PREVIOUS_CHAMPION]
        assert prev not in chain, f"cycle in the champion chain {chain} -> {prev}"
        assert value[prev] < value[v] and prev in passing, (chain, prev, value)
        chain.append(prev)
        v = prev
    if initial is not None:
        assert chain[-1] == initial, (chain, initial)
    if len(chain) > 1:
        assert aliases.get("previous-champion") == chain[1], (aliases, chain)
    promoted = {r.decision["challenger"] for r in results if r.decision.get("action") == "promote" and r.decision.get("applied")}
    assert promoted == (set(chain[:-1]) if initial is not None else set(chain)), (promoted, chain, [r.decision for r in results])
    return {"champion": best, "chain": chain, "aliases": aliases, "actions": {r.arg: r.decision.get("action") for r in results}}
