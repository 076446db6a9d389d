"""The test report describes exactly the test images that were scored."""

from __future__ import annotations

import json

import mlflow

from confutil import compose_config
from ferops.training.run import train


def test_fast_dev_run_on_the_defaults_reports_what_it_scored(mlflow_store, tmp_path):
    # The old code paired all 490 test images with the 256 probabilities of a one-batch test loop:
    # "ValueError: 490 images for 256 samples", and the run ended FAILED.
    cfg = compose_config(["+trainer.fast_dev_run=true", "trainer.enable_progress_bar=false", "~callbacks.progress_bar"])
    result = train(cfg, tmp_path / "out")
    n_test = 490
    assert result.metrics["test/n_scored"] == cfg.data.eval_batch_size < n_test
    assert result.metrics["test/coverage"] == cfg.data.eval_batch_size / n_test
    report = json.loads((tmp_path / "out" / "test_report" / "metrics.json").read_text())
    assert report["n_samples"] == cfg.data.eval_batch_size
    scored = (tmp_path / "out" / "test_report" / "scored_rows.txt").read_text().splitlines()
    assert scored[0].startswith(f"# {cfg.data.eval_batch_size} of {n_test}") and len(scored) == 1 + cfg.data.eval_batch_size
    assert mlflow.MlflowClient(mlflow_store).get_run(result.run_id).info.status == "FINISHED"


def test_full_test_loop_reports_every_test_image_once(mlflow_store, tmp_path):
    cfg = compose_config(
        [
            "experiment=smoke",
            "data.source.n_per_class=30",
            "trainer.max_epochs=1",
            "data.eval_batch_size=8",
            "trainer.enable_progress_bar=false",
            "~callbacks.progress_bar",
        ]
    )
    result = train(cfg, tmp_path / "out")
    assert result.metrics["test/coverage"] == 1.0
    rows = (tmp_path / "out" / "test_report" / "scored_rows.txt").read_text().splitlines()[1:]
    assert len(rows) == len(set(rows)) == result.metrics["test/n_scored"]
    # the quarantine report is per run (it was one shared outputs/quarantine.csv)
    assert (tmp_path / "out" / "quarantine.csv").is_file() and not (tmp_path / "outputs" / "quarantine.csv").exists()
