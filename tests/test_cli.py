"""`ferops` CLI: subcommands parse, call the registry, print, and act only when asked."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import mlflow
import pytest

from ferops import cli, tracking

NAME = "fer-cli"


@pytest.fixture(scope="module")
def empty_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli-template") / "mlflow.db"
    mlflow.MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def store(tmp_path, monkeypatch, empty_db):
    """Two finished runs and two registered versions (v1 champion, v2 challenger) on a temp store."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mlruns").mkdir()
    shutil.copy(empty_db, tmp_path / "mlruns" / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = mlflow.MlflowClient(uri, uri)
    client.create_registered_model(NAME)
    for i, f1 in enumerate((0.50, 0.60), start=1):
        with tracking.start_run("cli-exp", run_name=f"run-{i}") as run:
            metrics = {
                "val/macro_f1": f1 - 0.05,
                "test/acc": f1 + 0.1,
                "test/macro_f1": f1,
                "export/tflite_int8/accuracy": f1 + 0.08,
            }
            mlflow.log_metrics(metrics)
        tags = {
            "int8.macro_f1": str(f1),
            "int8.acc": str(f1 + 0.08),
            "export.gates_passed": "true",
            "data.fingerprint": "fp-same",
            "edgetpu.compatible": "true",
            "run.name": f"run-{i}",
        }
        client.create_model_version(NAME, source=f"{tmp_path}/model-{i}", run_id=run.info.run_id, tags=tags)
    client.set_registered_model_alias(NAME, "champion", "1")
    client.set_registered_model_alias(NAME, "challenger", "2")
    return client


def _aliases(client) -> dict[str, str]:
    return {k: str(v) for k, v in client.get_registered_model(NAME).aliases.items()}


def test_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for cmd in cli.COMMANDS:
        assert cmd.name in out
    with pytest.raises(SystemExit):
        cli.main([])  # a subcommand is required


def test_promote_dry_run_then_for_real(store, capsys):
    assert cli.main(["promote", "--name", NAME, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "PROMOTE (dry run)" in out and "0.6000" in out
    assert _aliases(store) == {"champion": "1", "challenger": "2"}

    assert cli.main(["promote", "--name", NAME, "--margin", "0.2"]) == 0  # wins by 0.1 < margin
    assert "REJECT" in capsys.readouterr().out and _aliases(store)["champion"] == "1"
    assert cli.main(["promote", "--name", NAME, "--json"]) == 0
    decision = json.loads(capsys.readouterr().out)
    assert decision["action"] == "promote" and decision["applied"] is True
    assert _aliases(store) == {"champion": "2", "challenger": "2", "previous-champion": "1"}


def test_rollback(store, capsys):
    assert cli.main(["rollback", "--name", NAME]) == 1  # v1 became champion without a predecessor
    assert "no previous champion" in capsys.readouterr().out
    cli.main(["promote", "--name", NAME])
    assert cli.main(["rollback", "--name", NAME]) == 0
    assert "2 -> 1" in capsys.readouterr().out
    assert _aliases(store)["champion"] == "1"


def test_config_file_supplies_defaults(store, tmp_path, capsys):
    (tmp_path / "params.yaml").write_text(f"registry:\n  name: {NAME}\n  margin: 0.5\ntracking:\n  experiment: cli-exp\n")
    assert cli.main(["promote", "--dry-run"]) == 0
    assert "margin 0.5" in capsys.readouterr().out
    assert cli.main(["runs"]) == 0
    assert "run-2" in capsys.readouterr().out


def test_runs_and_models_tables(store, capsys):
    assert cli.main(["runs", "--experiment", "cli-exp", "-n", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["run", "status", "start", "val/macro_f1", "test/acc", "test/macro_f1", "int8/acc"]
    assert len(lines) == 3 and lines[2].split()[0] == "run-2" and "FINISHED" in lines[2]
    assert lines[2].split()[-4:] == ["0.5500", "0.7000", "0.6000", "0.6800"]

    assert cli.main(["models", "--name", NAME]) == 0
    out = capsys.readouterr().out.splitlines()
    v2, v1 = out[2].split(), out[3].split()
    assert v2[:2] == ["2", "challenger"] and v1[:2] == ["1", "champion"]
    assert "0.6000" in v2 and "true" in v2

    assert cli.main(["runs", "--experiment", "nope"]) == 2
    assert "no experiment named 'nope'" in capsys.readouterr().err
    assert cli.main(["models", "--name", "nope"]) == 1


def test_console_script_entry_point():
    proc = subprocess.run([sys.executable, "-m", "ferops.cli", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "promote" in proc.stdout
