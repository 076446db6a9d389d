"""trainer=ddp on CPU: two gloo processes train the smoke preset; rank 0 alone records one MLflow run."""

from __future__ import annotations

import pytest


@pytest.mark.slow
def test_ddp_two_cpu_processes_train_and_log_once(tmp_path, smoke_args, run_train, experiment_runs):
    args = [
        *smoke_args,
        "trainer=ddp",
        "trainer.devices=2",
        "trainer.accelerator=cpu",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    res = run_train(args, tmp_path, timeout=400)
    out = res.output
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in out, out[-4000:]  # really two processes
    assert res.returncode == 0, out[-4000:]
    runs = experiment_runs(res.uri)
    names = [(r.info.run_name, r.info.status) for r in runs]
    assert len(runs) == 1, f"expected one run (rank 0), got {names}"
    run = runs[0]
    assert run.info.status == "FINISHED", names
    assert {"val/macro_f1_best", "test/acc", "train/loss"} <= set(run.data.metrics)
    assert run.data.params["trainer.strategy"] == "ddp"
    assert run.data.params["trainer.devices"] == "2"
    assert (tmp_path / "run" / "checkpoints" / "best.ckpt").is_file()
    # Each rank tests part of the split (padded with repeats); the report covers every test image once.
    rows = (tmp_path / "run" / "test_report" / "scored_rows.txt").read_text().splitlines()
    n_test = 20 * 7 // 10  # smoke_args: 20 synthetic faces per class, 10 % test
    assert rows[0].startswith(f"# {n_test} of {n_test}") and len(rows[1:]) == len(set(rows[1:])) == n_test
    assert run.data.metrics["test/coverage"] == 1.0
