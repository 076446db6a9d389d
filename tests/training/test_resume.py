"""A training killed with SIGKILL during epoch 2 resumes from last.ckpt into the same MLflow run and
ends exactly where the uninterrupted run with the same seed ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from ferops.training.resume import find_run_dir, read_state

REPO = Path(__file__).resolve().parents[2]
RUN = [
    "experiment=smoke",
    "data.source.n_per_class=30",
    "data.batch_size=16",
    "trainer.max_epochs=3",
    "trainer.enable_progress_bar=false",
    "~callbacks.progress_bar",
    "model.backbone_kwargs.widths=[8,16,32]",
    "optim.ema_decay=0.9",  # EMA state must survive too
    "optim.mixup.prob=0.5",
    "optim.mixup.mixup_alpha=0.4",
    "seed=5",
    "+callbacks.sigkill._target_=sigkill.SigkillAt",  # active only with FEROPS_TEST_SIGKILL=1
    "+callbacks.sigkill.epoch=1",
    "+callbacks.sigkill.batch=3",
]


def run_train(args, tmp_path, uri, kill=False):
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": uri,
        "PYTHONPATH": str(Path(__file__).parent),
        "FEROPS_TEST_SIGKILL": "1" if kill else "0",
    }
    return subprocess.run(
        [sys.executable, "-m", "ferops.train", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )


def history(client, run_id):
    keys = [k for k in client.get_run(run_id).data.metrics if k.startswith(("val/", "train/loss", "test/"))]
    return {k: [(m.step, m.value) for m in sorted(client.get_metric_history(run_id, k), key=lambda m: m.step)] for k in keys}


def test_sigkill_in_epoch_2_then_resume_matches_the_uninterrupted_run(mlflow_store, tmp_path):
    client = mlflow.MlflowClient(mlflow_store)
    ref = run_train([*RUN, f"paths.output_dir={tmp_path / 'ref'}"], tmp_path, mlflow_store)
    assert ref.returncode == 0, ref.stderr[-3000:]

    crashed = run_train([*RUN, f"paths.output_dir={tmp_path / 'crash'}"], tmp_path, mlflow_store, kill=True)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-3000:]
    state = read_state(tmp_path / "crash")
    assert state and not state["finished"] and (tmp_path / "crash" / "checkpoints" / "last.ckpt").is_file()
    assert client.get_run(state["run_id"]).info.status == "RUNNING"  # killed: nobody closed it

    resumed = run_train([*RUN, f"paths.output_dir={tmp_path / 'crash'}", "resume=true"], tmp_path, mlflow_store)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert read_state(tmp_path / "crash")["finished"] and read_state(tmp_path / "crash")["run_id"] == state["run_id"]
    runs = client.search_runs([client.get_experiment_by_name("ferops-smoke").experiment_id])
    assert len(runs) == 2, "the resumed training must continue its own MLflow run"
    run = client.get_run(state["run_id"])
    assert run.info.status == "FINISHED" and run.data.tags.get("resumed_from")

    ref_run = next(r for r in runs if r.info.run_id != state["run_id"])
    h_ref, h_res = history(client, ref_run.info.run_id), history(client, state["run_id"])
    assert len(h_res["val/macro_f1"]) == 3, "each epoch counted once"
    assert [s for s, _ in h_res["val/macro_f1"]] == [s for s, _ in h_ref["val/macro_f1"]], "same steps"
    assert h_res == h_ref, "resumed run ended elsewhere than the uninterrupted one"


def test_find_run_dir(tmp_path):
    assert find_run_dir(False, tmp_path) is None
    with pytest.raises(FileNotFoundError, match="no unfinished run"):
        find_run_dir(True, tmp_path)
    for name, finished in [("old", False), ("done", True)]:
        (tmp_path / name / "checkpoints").mkdir(parents=True)
        (tmp_path / name / "checkpoints" / "last.ckpt").write_bytes(b"x")
        (tmp_path / name / "run_state.json").write_text(f'{{"run_id": "r", "finished": {str(finished).lower()}}}')
    assert find_run_dir(True, tmp_path) == tmp_path / "old"
    assert find_run_dir(str(tmp_path / "done" / "checkpoints" / "last.ckpt"), tmp_path) == tmp_path / "done"
