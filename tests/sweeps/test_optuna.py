"""hparams_search=fer_optuna: trials are nested runs; the parent gets the study summary."""

from __future__ import annotations

import mlflow
import pytest


@pytest.mark.slow
def test_optuna_study_logs_trials_and_best_params_to_the_parent(tmp_path, smoke_args, sweep_wiring, run_train, experiment_runs):
    n_trials = 3
    args = [
        "hparams_search=fer_optuna",
        f"hydra.sweeper.n_trials={n_trials}",
        *smoke_args,
        *sweep_wiring,
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    ]
    res = run_train(args, tmp_path, timeout=400)
    assert res.returncode == 0, res.output[-4000:]

    runs = experiment_runs(res.uri)
    parent = next(r for r in runs if r.data.tags.get("ferops.sweep") == "true")
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == n_trials and len(runs) == n_trials + 1
    assert parent.data.tags["sweep.sweeper"] == "OptunaSweeper"
    assert parent.data.params["sweeper.direction"] == "maximize"
    assert "sweeper.params.optim.optimizer.lr" in parent.data.params
    best_value = max(c.data.metrics["val/macro_f1_best"] for c in children)
    assert parent.data.metrics["optuna/best_value"] == pytest.approx(best_value)
    assert "best.optim.optimizer.lr" in parent.data.params and "best.loss" in parent.data.params
    client = mlflow.MlflowClient(res.uri)
    assert {a.path for a in client.list_artifacts(parent.info.run_id, "optuna")} == {
        "optuna/trials.csv",
        "optuna/study_summary.md",
    }
    assert "sweep/optimization_results.yaml" in {a.path for a in client.list_artifacts(parent.info.run_id, "sweep")}
    # every trial's sampled values reached its config
    for child in children:
        overrides = dict(o.split("=", 1) for o in child.data.tags["sweep.overrides"].split() if "=" in o)
        assert float(child.data.params["optim.optimizer.lr"]) == pytest.approx(float(overrides["optim.optimizer.lr"]))
