"""`python -m ferops.train -m model=... loss=...`: one parent run, one nested child per job, the
sweep report on the parent; the same with the joblib launcher (2 worker processes writing to one
SQLite store at once) without a lost run or a "database is locked" error."""

from __future__ import annotations

import itertools

import mlflow
import pytest

MODELS = ["fer_vgg", "fer_resnet"]
LOSSES = {"ce": "CrossEntropyLoss", "focal": "FocalLoss"}


def tail(text: str, n: int = 4000) -> str:
    return text[-n:]


def _check_sweep(experiment_runs, uri: str, output: str, n_jobs: int) -> tuple[mlflow.entities.Run, list]:
    assert "database is locked" not in output.lower(), tail(output)
    runs = experiment_runs(uri)
    parents = [r for r in runs if r.data.tags.get("ferops.sweep") == "true"]
    assert len(parents) == 1, f"{len(parents)} sweep parents\n{tail(output)}"
    parent = parents[0]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    strays = [r.info.run_name for r in runs if r not in children and r is not parent]
    assert not strays, f"runs outside the sweep parent: {strays}\n{tail(output)}"
    assert len(children) == n_jobs, tail(output)
    assert all(c.info.status == "FINISHED" for c in children)
    assert sorted(int(c.data.tags["sweep.job_num"]) for c in children) == list(range(n_jobs))
    assert all("val/macro_f1_best" in c.data.metrics for c in children)

    client = mlflow.MlflowClient(uri)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["sweep.n_jobs"] == str(n_jobs)
    assert parent.data.tags["sweep.n_runs"] == str(n_jobs)
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "sweep_report")}
    assert {"sweep_report/summary.csv", "sweep_report/heatmap.png", "sweep_report/runs.csv"} <= artifacts
    best = max(c.data.metrics["val/macro_f1_best"] for c in children)
    assert parent.data.metrics["best/val/macro_f1_best"] == pytest.approx(best)
    return parent, children


def test_grid_multirun_nests_every_job_under_one_parent(tmp_path, sweep_args, run_train, experiment_runs):
    args = ["-m", f"model={','.join(MODELS)}", f"loss={','.join(LOSSES)}", *sweep_args, f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    res = run_train(args, tmp_path)
    assert res.returncode == 0, tail(res.output)
    parent, children = _check_sweep(experiment_runs, res.uri, res.output, n_jobs=4)

    assert parent.data.tags["sweep.sweeper"] == "BasicSweeper"
    assert parent.data.params["overrides.model"] == ",".join(MODELS)
    assert parent.data.params["overrides.loss"] == ",".join(LOSSES)
    combos = {(c.data.tags["model"], c.data.tags["loss"]) for c in children}
    assert combos == set(itertools.product(MODELS, LOSSES.values()))
    summary = (tmp_path / "sweep" / "sweep_report" / "summary.csv").read_text().splitlines()
    assert len(summary) == 1 + len(MODELS) and all(loss in summary[0] for loss in LOSSES.values())


def test_joblib_two_workers_lose_no_run(tmp_path, sweep_args, run_train, experiment_runs):
    args = [
        "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
        f"model={','.join(MODELS)}", f"loss={','.join(LOSSES)}",
        *sweep_args, f"hydra.sweep.dir={tmp_path / 'sweep'}",
    ]  # fmt: skip
    res = run_train(args, tmp_path, timeout=400)
    assert res.returncode == 0, tail(res.output)
    parent, children = _check_sweep(experiment_runs, res.uri, res.output, n_jobs=4)
    assert parent.data.tags["sweep.launcher"] == "JoblibLauncher"
    # Two jobs really ran at once: some child runs overlap in time.
    spans = sorted((c.info.start_time, c.info.end_time) for c in children)
    assert any(b_start < a_end for (_, a_end), (b_start, _) in itertools.pairwise(spans)), spans


@pytest.mark.slow
def test_submitit_local_launcher_nests_jobs(tmp_path, sweep_args, run_train, experiment_runs):
    """The cluster path without a cluster: submitit pickles the callback (with the parent id) into
    separate job processes, as it does for SLURM."""
    args = [
        "-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10",
        "model=fer_vgg", f"loss={','.join(LOSSES)}",
        *sweep_args, f"hydra.sweep.dir={tmp_path / 'sweep'}",
    ]  # fmt: skip
    res = run_train(args, tmp_path, timeout=500)
    assert res.returncode == 0, tail(res.output)
    parent, _ = _check_sweep(experiment_runs, res.uri, res.output, n_jobs=2)
    assert parent.data.tags["sweep.launcher"] == "LocalLauncher"
