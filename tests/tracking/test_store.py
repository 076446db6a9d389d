"""The one MLflow client factory, parameter flattening/logging and child runs (ferops.tracking.store)."""

from __future__ import annotations

import subprocess
import sys

import mlflow

from ferops import tracking


def test_client_points_runs_and_registry_at_the_project_store(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'fresh' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    client = tracking.client()
    assert client.tracking_uri == uri and client._registry_uri == uri
    assert (tmp_path / "fresh").is_dir()  # SQLite creates the file, not its directory
    other = f"sqlite:///{tmp_path / 'other' / 'mlflow.db'}"
    assert tracking.client(other).tracking_uri == other


def test_client_set_default_moves_the_fluent_api(tmp_path, monkeypatch):
    import mlflow.tracking._model_registry.utils as registry_utils
    import mlflow.tracking._tracking_service.utils as tracking_utils

    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)  # set_registry_uri exports it
    # the fluent API's store is process-global: restored after the test
    monkeypatch.setattr(tracking_utils, "_tracking_uri", tracking_utils._tracking_uri)
    monkeypatch.setattr(registry_utils, "_registry_uri", None)
    before = mlflow.get_tracking_uri()
    tracking.client(f"sqlite:///{tmp_path / 'a' / 'mlflow.db'}")
    assert mlflow.get_tracking_uri() == before
    tracking.client(set_default=True)
    assert mlflow.get_tracking_uri() == uri and mlflow.get_registry_uri() == uri


def test_flatten_params_nests_cuts_and_cleans_keys():
    flat = tracking.flatten_params({"a": {"b": {"c": 1}, "l": [1, 2]}, "overrides.+trainer.x": "2", "long": "v" * 7000})
    assert flat == {"a.b.c": "1", "a.l": "[1, 2]", "overrides._trainer.x": "2", "long": "v" * 6000}
    assert tracking.flatten_params({"k": 1}, prefix="sweeper.") == {"sweeper.k": "1"}
    assert tracking.mlflow_key("x" * 300) == "x" * 250


def test_log_params_flat_to_a_run_by_id_in_batches(mlflow_store):
    exp = tracking.ensure_experiment("params")
    run_id = tracking.client().create_run(exp).info.run_id
    params = {"many": {f"p{i:03d}": i for i in range(250)}, "+odd": "x"}
    tracking.log_params_flat(params, run_id=run_id)
    logged = tracking.client().get_run(run_id).data.params
    assert len(logged) == 251 and logged["many.p249"] == "249" and logged["_odd"] == "x"


def test_child_runs(mlflow_store):
    exp = tracking.ensure_experiment("children")
    client = tracking.client()
    parent = client.create_run(exp).info.run_id
    kids = {client.create_run(exp, tags={"mlflow.parentRunId": parent}).info.run_id for _ in range(3)}
    client.create_run(exp)  # not a child
    assert {r.info.run_id for r in tracking.child_runs(parent)} == kids
    try:
        tracking.child_runs("0" * 32)
    except LookupError as err:
        assert "no run" in str(err)
    else:
        raise AssertionError("expected LookupError")


def test_old_import_paths_still_work():
    from ferops.sweeps import report, server
    from ferops.sweeps.callback import mlflow_key
    from ferops.tracking import server as tracking_server

    assert mlflow_key is tracking.mlflow_key and report.child_runs is tracking.child_runs
    assert server.tracking_server is tracking_server.tracking_server and server.free_port is tracking_server.free_port


def test_sweep_callback_import_stays_light():
    """Hydra instantiates the callback in every job before the job's own imports: no mlflow yet."""
    code = "import sys, ferops.sweeps, ferops.sweeps.callback; print('mlflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True).stdout
    assert out.strip() == "False"
