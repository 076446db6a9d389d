"""The registry under concurrent callers (a `dvc queue start -j 4` with auto-promotion): promotion
and first registration are read-modify-write / check-then-act on MLflow, which has no
compare-and-set; `ferops.registry.lock` serialises them. Here 4 processes, released at the same
instant, promote different versions (and, in a fresh store, register them); afterwards `champion`
is the best gate-passing version, the previous-champion chain is one consistent line, and no
process failed. Also: a relative store inside a DVC queue workspace stops with what to set."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import mlflow
import pytest
from registry.race import INITIAL_F1, RACE_VERSIONS, check_outcome, make_versions, run_workers

from ferops.registry.promote import PROMOTE, promote

NAME = "fer-race"


def test_four_processes_promote_at_once(store, make_run, tmp_path, capsys):
    client = mlflow.MlflowClient()
    run_id = make_run(fingerprint="fp-race")
    (initial,) = make_versions(client, NAME, run_id, str(tmp_path / "model"), [(INITIAL_F1, True)])
    assert promote(NAME, version=initial).action == PROMOTE
    racers = make_versions(client, NAME, run_id, str(tmp_path / "model"), RACE_VERSIONS)
    results = run_workers("promote", store, NAME, racers, tmp_path / "race")
    summary = check_outcome(client, NAME, results, initial)
    with capsys.disabled():
        print(f"\n  [race sqlite] {summary}")


def _pipeline_dir(root: Path, bundle_root: Path, run_id: str, metrics: dict) -> str:
    out = root / "outputs"
    out.mkdir(parents=True)
    (out / "run_id.txt").write_text(run_id + "\n")
    (out / "metrics.json").write_text(json.dumps(metrics))
    shutil.copytree(bundle_root / "bundle", out / "bundle")
    return str(root)


def test_four_register_stages_at_once_on_a_fresh_store(store, bundle_root, make_run, export_metrics, tmp_path, capsys):
    """First registration races too (the registered model does not exist yet): every stage
    registers its version, promotion compares each with the champion of the moment."""
    dirs = [
        _pipeline_dir(tmp_path / f"w{i}", bundle_root, make_run(), export_metrics(f1, gates=gates))
        for i, (f1, gates) in enumerate(RACE_VERSIONS)
    ]
    results = run_workers("register", store, NAME, dirs, tmp_path / "race", timeout=400)
    client = mlflow.MlflowClient()
    summary = check_outcome(client, NAME, results, None)
    versions = client.search_model_versions(f"name = '{NAME}'")
    assert sorted(int(v.version) for v in versions) == [1, 2, 3, 4]
    assert summary["aliases"]["challenger"] == "4"  # the newest version, whoever registered last
    with capsys.disabled():
        print(f"\n  [race register] {summary}")


def test_relative_store_in_a_dvc_queue_workspace_stops(tmp_path, monkeypatch):
    from ferops.registry.register import StoreLocationError, check_store_location, registry_client

    ws = tmp_path / "repo" / ".dvc" / "tmp" / "exps" / "tmpabc123"
    ws.mkdir(parents=True)
    monkeypatch.chdir(ws)
    for uri in ("sqlite:///mlruns/mlflow.db", f"sqlite:///{ws / 'mlruns' / 'mlflow.db'}"):
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        with pytest.raises(StoreLocationError, match="export an absolute MLFLOW_TRACKING_URI before `dvc queue start`"):
            registry_client()
    monkeypatch.delenv("MLFLOW_TRACKING_URI")  # the default store, mlruns/ under the working directory
    monkeypatch.delenv("FEROPS_MLRUNS_DIR", raising=False)
    with pytest.raises(StoreLocationError, match=re.escape("sqlite:////path/to/repo/mlruns/mlflow.db")):
        registry_client()
    # an absolute store outside the workspace, or a server, is fine there
    check_store_location(f"sqlite:///{tmp_path / 'repo' / 'mlruns' / 'mlflow.db'}", ws)
    check_store_location("http://127.0.0.1:5000", ws)
    check_store_location("sqlite:///mlruns/mlflow.db", tmp_path / "repo")  # a plain workspace


def test_lock_locations(tmp_path, monkeypatch):
    from ferops.registry.lock import is_shared_across_machines, lock_path

    assert lock_path(f"sqlite:///{tmp_path / 'm' / 'mlflow.db'}") == tmp_path / "m" / "mlflow.db.registry.lock"
    monkeypatch.setenv("FEROPS_REGISTRY_LOCK_DIR", str(tmp_path / "locks"))
    a, b = lock_path("http://127.0.0.1:5000"), lock_path("http://127.0.0.1:5000/")
    assert a == b and a.parent == tmp_path / "locks" and a != lock_path("http://127.0.0.1:5001")
    assert not is_shared_across_machines("http://127.0.0.1:5000") and not is_shared_across_machines("sqlite:///x.db")
    assert is_shared_across_machines("https://mlflow.example") and is_shared_across_machines("postgresql://u:p@db:5432/mlflow")


def test_promote_verifies_its_writes_and_decides_again(store, make_run, tmp_path):
    """A writer the lock does not reach (another machine on the same tracking server) moves
    `champion` right after our write: promote sees it when verifying, decides again against the
    new champion, and leaves one consistent chain."""
    from ferops.registry import tags as T

    client = mlflow.MlflowClient()
    run_id = make_run(fingerprint="fp-race")
    v1, v2, v3 = make_versions(client, NAME, run_id, str(tmp_path / "model"), [(0.40, True), (0.55, True), (0.50, True)])
    assert promote(NAME, version=v1).action == PROMOTE

    class Interloper(mlflow.MlflowClient):
        struck = False

        def set_registered_model_alias(self, name, alias, version):
            super().set_registered_model_alias(name, alias, version)
            if alias == "champion" and not self.struck:  # the other machine's promotion of v3 over v1 lands now
                self.struck = True
                super().set_model_version_tag(name, v3, T.PREVIOUS_CHAMPION, v1)
                super().set_registered_model_alias(name, "previous-champion", v1)
                super().set_registered_model_alias(name, "champion", v3)

    d = promote(NAME, version=v2, client=Interloper(tracking_uri=store, registry_uri=store))
    assert (d.action, d.champion, d.new_champion, d.attempts) == (PROMOTE, v3, v2, 2), d.summary()
    aliases = {k: str(v) for k, v in client.get_registered_model(NAME).aliases.items()}
    assert aliases["champion"] == v2 and aliases["previous-champion"] == v3
    assert client.get_model_version(NAME, v2).tags[T.PREVIOUS_CHAMPION] == v3
