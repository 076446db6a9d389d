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
