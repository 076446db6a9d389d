"""sweep_report on a fake parent with children: table, backbone x loss summary, plots, logged to the parent."""

from __future__ import annotations

import uuid

import mlflow
import pandas as pd
import pytest
import yaml

from ferops.sweeps.report import sweep_report
from ferops.sweeps.study import log_study_summary

# (model, loss, val/macro_f1_best, num_params): fer_vgg x focal twice, its best is 0.61
CHILDREN = [
    ("fer_vgg", "CrossEntropyLoss", 0.50, 1.2e5),
    ("fer_vgg", "FocalLoss", 0.55, 1.2e5),
    ("fer_vgg", "FocalLoss", 0.61, 1.2e5),
    ("resnet18", "CrossEntropyLoss", 0.58, 1.1e7),
    ("resnet18", "FocalLoss", 0.40, 1.1e7),
]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One SQLite store for the module (creating one costs seconds); each test uses its own experiment."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlruns') / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        yield uri


def _experiment(client) -> str:
    return client.create_experiment(f"sweeps-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def fake_sweep(store):
    client = mlflow.MlflowClient(store)
    exp = _experiment(client)
    parent = client.create_run(exp, run_name="sweep-parent", tags={"ferops.sweep": "true"}).info.run_id
    ids = []
    for job, (model, loss, f1, n_params) in enumerate(CHILDREN):
        tags = {
            "mlflow.parentRunId": parent,
            "model": model,
            "loss": loss,
            "sweep.job_num": str(job),
            "sweep.overrides": f"model={model} loss={loss} optim.optimizer.lr={0.001 * (job + 1)} trainer.max_epochs=1",
        }
        run = client.create_run(exp, run_name=f"child-{job}", tags=tags).info.run_id
        client.log_metric(run, "val/macro_f1_best", f1)
        client.log_metric(run, "test/acc", f1 + 0.1)
        client.log_metric(run, "model/num_params", n_params)
        client.set_terminated(run)
        ids.append(run)
    # Not a child: must stay out of the report.
    stray = client.create_run(exp, run_name="stray", tags={"model": "fer_vgg", "loss": "FocalLoss"}).info.run_id
    client.log_metric(stray, "val/macro_f1_best", 0.99)
    client.set_terminated(stray)
    return client, parent, ids


def test_sweep_report_table_summary_plots_and_parent_logging(fake_sweep, tmp_path):
    client, parent, ids = fake_sweep
    df, paths = sweep_report(parent, tmp_path / "report")

    assert sorted(df["run_id"]) == sorted(ids)
    assert list(df["job"]) == [0, 1, 2, 3, 4]
    assert (df["status"] == "FINISHED").all()
    # varying overrides become columns, constant ones are dropped
    assert "optim.optimizer.lr" in df.columns and "trainer.max_epochs" not in df.columns

    summary = pd.read_csv(paths["summary_csv"], index_col=0)
    assert summary.loc["fer_vgg", "FocalLoss"] == pytest.approx(0.61)
    assert summary.loc["fer_vgg", "CrossEntropyLoss"] == pytest.approx(0.50)
    assert summary.loc["resnet18", "CrossEntropyLoss"] == pytest.approx(0.58)
    assert summary.shape == (2, 2)
    for key in ("runs_csv", "runs_md", "summary_md", "heatmap", "tradeoff"):
        assert paths[key].is_file() and paths[key].stat().st_size > 0, key
    assert paths["heatmap"].read_bytes()[:4] == b"\x89PNG"
    assert df["num_params"].notna().all()

    logged = {a.path for a in client.list_artifacts(parent, "sweep_report")}
    assert {
        "sweep_report/summary.csv",
        "sweep_report/heatmap.png",
        "sweep_report/tradeoff.png",
        "sweep_report/runs.csv",
    } <= logged
    run = client.get_run(parent)
    assert run.data.metrics["best/val/macro_f1_best"] == pytest.approx(0.61)
    assert run.data.tags["sweep.best_run_id"] == ids[2]
    assert run.data.tags["sweep.n_runs"] == "5"


def test_sweep_report_without_size_metrics_has_no_tradeoff_plot(store, tmp_path):
    client = mlflow.MlflowClient(store)
    exp = _experiment(client)
    parent = client.create_run(exp).info.run_id
    child = client.create_run(exp, tags={"mlflow.parentRunId": parent, "model": "m", "loss": "l"}).info.run_id
    client.log_metric(child, "val/macro_f1_best", 0.3)
    df, paths = sweep_report(parent, tmp_path, log_to_parent=False)
    assert len(df) == 1 and "tradeoff" not in paths and "heatmap" in paths
    assert not client.list_artifacts(parent)


def test_sweep_report_without_children_raises(store, tmp_path):
    client = mlflow.MlflowClient(store)
    parent = client.create_run(_experiment(client)).info.run_id
    with pytest.raises(LookupError, match="no child runs"):
        sweep_report(parent, tmp_path)


def test_study_summary_logged_to_parent(fake_sweep, tmp_path):
    client, parent, _ = fake_sweep
    df, _ = sweep_report(parent, tmp_path / "report", log_to_parent=False)
    results = {"name": "optuna", "best_params": {"optim.optimizer.lr": 0.003, "loss": "focal"}, "best_value": 0.61}
    (tmp_path / "optimization_results.yaml").write_text(yaml.safe_dump(results))
    paths = log_study_summary(parent, df, tmp_path, metric="val/macro_f1_best")

    trials = pd.read_csv(paths["trials_csv"])
    assert trials["val/macro_f1_best"].iloc[0] == pytest.approx(0.61)  # best first
    assert {"trial", "status", "optim.optimizer.lr"} <= set(trials.columns)
    assert "best parameters" in paths["study_summary"].read_text().lower()
    run = client.get_run(parent)
    assert run.data.params["best.optim.optimizer.lr"] == "0.003"
    assert run.data.metrics["optuna/best_value"] == pytest.approx(0.61)
    assert {a.path for a in client.list_artifacts(parent, "optuna")} == {"optuna/trials.csv", "optuna/study_summary.md"}


def test_latest_sweep_and_unknown_parent(fake_sweep, tmp_path):
    from ferops.sweeps.report import latest_sweep

    client, parent, _ = fake_sweep
    exp_name = client.get_experiment(client.get_run(parent).info.experiment_id).name
    assert latest_sweep(exp_name) == parent
    with pytest.raises(LookupError, match="no run"):
        sweep_report("0" * 32, tmp_path)
