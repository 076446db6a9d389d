"""The DVC register stage: default paths under outputs/, params.yaml's registry block, registered.json."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import mlflow

from ferops.stages import register as stage
from ferops.stages.common import EXPORT_METRICS
from ferops.tracking import write_run_id


def _pipeline_outputs(root: Path, bundle_root: Path, run_id: str, metrics: dict) -> None:
    write_run_id(run_id, root / "outputs/run_id.txt")
    export = root / "outputs/export"
    shutil.copytree(bundle_root / "bundle", export / "bundle", dirs_exist_ok=True)
    (export / "exports").mkdir(parents=True, exist_ok=True)
    shutil.copy(bundle_root / "model.onnx", export / "exports/model.onnx")
    (root / EXPORT_METRICS).parent.mkdir(parents=True, exist_ok=True)
    (root / EXPORT_METRICS).write_text(json.dumps(metrics))


def test_register_stage(store, tmp_path, bundle_root, make_run, export_metrics):
    (tmp_path / "params.yaml").write_text("registry:\n  name: fer-stage\n  margin: 0.01\n  gates:\n    max_latency_ms: 5\n")

    _pipeline_outputs(tmp_path, bundle_root, make_run(), export_metrics(0.40))
    stage.main([])
    first = json.loads((tmp_path / "outputs/register/registered.json").read_text())
    assert (first["name"], first["version"], first["aliases"]) == ("fer-stage", "1", ["challenger", "champion"])
    assert first["promotion"]["action"] == "promote"

    # a slower model, better on F1, is registered but fails the latency gate from params.yaml
    run2 = make_run()
    _pipeline_outputs(tmp_path, bundle_root, run2, export_metrics(0.45, latency=9.0))
    stage.main([])
    second = json.loads((tmp_path / "outputs/register/registered.json").read_text())
    assert (second["version"], second["aliases"], second["run_id"]) == ("2", ["challenger"], run2)
    assert second["promotion"]["action"] == "reject" and "latency.ms=9 > 5" in second["promotion"]["reason"]

    local = Path(mlflow.artifacts.download_artifacts(second["model_uri"]))
    assert (local / "artifacts/model.onnx").is_file() and not (local / "artifacts/best.ckpt").exists()
    assert mlflow.MlflowClient().get_model_version("fer-stage", "1").tags["promotion.decision"] == "retained"


def test_register_stage_stores_val_predictions_and_promotes_on_evidence(store, tmp_path, bundle_root, make_run, export_metrics):
    """The stage picks up outputs/export/exports/eval_predictions.npz: the second version's +0.01 on
    300 val rows is judged by the paired bootstrap and rejected as noise (registered.json shows why)."""
    import numpy as np
    import pytest

    from ferops.evaluation.metrics import macro_f1
    from ferops.registry.evidence import save_predictions

    (tmp_path / "params.yaml").write_text("registry:\n  name: fer-stage-ev\n")
    rng = np.random.default_rng(0)
    ids, y = np.array([f"r{i}" for i in range(300)]), rng.integers(0, 7, 300)
    champ = np.where(rng.random(300) < 0.55, y, (y + 1) % 7)
    chal = champ.copy()
    fix, brk = rng.choice(np.flatnonzero(chal != y), 11, replace=False), rng.choice(np.flatnonzero(chal == y), 8, replace=False)
    chal[fix], chal[brk] = y[fix], (y[brk] + 2) % 7
    preds = tmp_path / "outputs/export/exports/eval_predictions.npz"
    for pred in (champ, chal):
        f1 = round(macro_f1(y, pred, 7), 6)
        _pipeline_outputs(tmp_path, bundle_root, make_run(), export_metrics(f1) | {"eval_split": "val"})
        save_predictions(preds, ids, y, {"tflite_int8": pred}, 7)
        stage.main([])
    second = json.loads((tmp_path / "outputs/register/registered.json").read_text())
    p = second["promotion"]
    assert second["version"] == "2" and p["action"] == "reject" and p["challenger_value"] > p["champion_value"]
    assert p["comparison"]["n"] == 300 and p["comparison"]["low"] < 0 < p["comparison"]["high"], p
    assert mlflow.MlflowClient().get_model_version("fer-stage-ev", "2").tags["eval.predictions_uri"].startswith("runs:/")

    # an export that scored the test split cannot be registered
    _pipeline_outputs(tmp_path, bundle_root, make_run(), export_metrics(0.9) | {"eval_split": "test"})
    with pytest.raises(ValueError, match="decides on val only"):
        stage.main([])
