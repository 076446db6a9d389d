"""export: checkpoint -> ONNX -> TensorFlow -> int8 TFLite -> EdgeTPU check -> deployment bundle,
each step checked against the one before; gates fail the stage with their message."""

from __future__ import annotations

import sys

import mlflow

from ferops import tracking
from ferops.data import load_prepared
from ferops.export import ExportGateError, flat_metrics, run_export
from ferops.stages.common import CHECKPOINT, EXPORT_DIR, EXPORT_METRICS, PREPARED_DIR, load_params, pipeline_run, setup_logging
from ferops.training.checkpoint import load_deployable


def main() -> None:
    setup_logging()
    cfg = load_params()
    model, meta = load_deployable(CHECKPOINT)
    data = load_prepared(PREPARED_DIR)
    train, test = data.splits["train"], data.splits["test"]
    source = {"run_id": tracking.read_run_id(), "checkpoint": str(CHECKPOINT), "data_fingerprint": data.fingerprint}
    with pipeline_run(cfg):
        try:
            report = run_export(
                model, meta, train.images, train.labels, test.images, test.labels, EXPORT_DIR, cfg.export,
                source=source, metrics_path=EXPORT_METRICS,
            )
        except ExportGateError as err:
            mlflow.log_metrics(flat_metrics(err.report["metrics"]))
            mlflow.set_tag("export.gates", "failed")
            sys.exit(f"export: {err}")
        mlflow.log_metrics(flat_metrics(report["metrics"]))
        mlflow.set_tags({"export.gates": "passed", "edgetpu.compatible": str(report["edgetpu"]["compatible"]).lower()})
        mlflow.log_artifacts(str(EXPORT_DIR / "bundle"), artifact_path="export/bundle")
        mlflow.log_artifact(str(EXPORT_METRICS), artifact_path="export")
        for name in ("export_report.json", "edgetpu_report.json", "report.md"):
            path = EXPORT_DIR / "exports" / name
            if path.is_file():
                mlflow.log_artifact(str(path), artifact_path="export")


if __name__ == "__main__":
    main()
