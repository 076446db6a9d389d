"""Tracking-server mode: a training run logs over HTTP to an `mlflow server` (SQLite store,
proxied artifacts) that the test starts on a free 127.0.0.1 port and stops."""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path

import mlflow
import pytest

from ferops.tracking.server import server_command, tracking_server


def test_server_command_binds_localhost_and_serves_artifacts(tmp_path):
    cmd = server_command(tmp_path, port=5123)
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1"
    assert cmd[cmd.index("--backend-store-uri") + 1] == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    assert cmd[cmd.index("--artifacts-destination") + 1] == str(tmp_path.resolve() / "artifacts")
    assert "--serve-artifacts" in cmd


def test_training_logs_over_http(tmp_path, smoke_args, run_train):
    store = tmp_path / "server"
    with tracking_server(store) as uri:
        host, port = uri.removeprefix("http://").split(":")
        res = run_train([*smoke_args, f"hydra.run.dir={tmp_path / 'run'}"], tmp_path, uri=uri)
        assert res.returncode == 0, res.output[-4000:]

        client = mlflow.MlflowClient(uri)  # read back over HTTP
        exp = client.get_experiment_by_name("ferops-sweep-test")
        assert exp.artifact_location.startswith("mlflow-artifacts:"), exp.artifact_location
        runs = client.search_runs([exp.experiment_id])
        assert len(runs) == 1
        run = runs[0]
        assert run.info.status == "FINISHED"
        assert {"val/macro_f1_best", "test/acc"} <= set(run.data.metrics)
        assert run.data.tags["model"] == "fer_vgg"
        top = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"config.yaml", "test_report"} <= top
        # the artifact came back through the server, and the server stored it under its store dir
        local = client.download_artifacts(run.info.run_id, "config.yaml", str(tmp_path / "dl"))
        assert "optimized_metric" in Path(local).read_text()
        assert list((store / "artifacts").rglob("config.yaml"))
        with urllib.request.urlopen(f"{uri}/health", timeout=5) as resp:
            assert resp.status == 200
    # stopped: nothing listens on the port any more
    with socket.socket() as s, pytest.raises(OSError):
        s.settimeout(2)
        s.connect((host, int(port)))
    assert (store / "mlflow.db").is_file()
