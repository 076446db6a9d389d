"""export: checkpoint -> ONNX -> TensorFlow -> int8 TFLite -> EdgeTPU check -> deployment bundle,
each step checked against the one before; gates fail the stage with their message.

Split rule: every choice is made on val. The export chain scores every format on the VAL split and
its gates decide on those numbers (the top level of reports/export/metrics.json, which the register
stage turns into the version tags promotion reads). Only after the gates have passed is the TEST
split scored, once, by the selected model (PyTorch and int8 TFLite), and reported under
``metrics["test"]``; nothing reads it to decide anything. The int8 val predictions with their row
ids go to outputs/export/exports/eval_predictions.npz (the registry's paired bootstrap reads them).
The temperature and the unknown threshold in the bundle are fitted on val too (run_export); the test
split only reports them (calibration.json, threshold_recommendation.json, reliability diagrams,
``metrics["calibration"|"unknown"]["test"]``, all in reports/export/). The deployed int8 model also
gets the evaluate stage's full report on test (reports/export/int8_test/: per-class P/R/F1, NLL, ECE,
confusion matrix, reliability diagram, confident mistakes) and the per-class fp32 -> int8 table
(reports/export/int8_per_class_test.csv), both from the one inference of each model on test.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import mlflow
from omegaconf import open_dict

from ferops import tracking
from ferops.data import load_prepared
from ferops.export import ExportGateError, flat_metrics, run_export
from ferops.export.split_scores import (
    REPORT_SPLIT,
    add_postprocessing_split,
    add_test_section,
    score_split,
    write_int8_report,
    write_metrics,
)
from ferops.models.checkpoint import load_deployable
from ferops.runtime import BundleModel
from ferops.stages.common import CHECKPOINT, EXPORT_DIR, EXPORT_METRICS, PREPARED_DIR, load_params, pipeline_run, setup_logging

log = logging.getLogger("ferops.stages.export")

EVAL_SPLIT = "val"  # what the gates and the registry decide on


def main() -> None:
    setup_logging()
    cfg = load_params()
    model, meta = load_deployable(CHECKPOINT)
    data = load_prepared(PREPARED_DIR)
    train, val, test = data.splits["train"], data.splits[EVAL_SPLIT], data.splits[REPORT_SPLIT]
    record = data.split_record
    if cfg.export.get("calibration_seed") is None:  # null: the run's seed draws the calibration subset
        with open_dict(cfg):
            cfg.export.calibration_seed = int(cfg.get("seed") or 0)
    source = {
        "run_id": tracking.read_run_id(),
        "checkpoint": str(CHECKPOINT),
        "data_fingerprint": data.fingerprint,
        "eval_split": EVAL_SPLIT,
        **{k: record[k] for k in ("val_source", "val_digest") if k in record},
    }
    with pipeline_run(cfg):
        try:
            report = run_export(
                model,
                meta,
                train.images,
                train.labels,
                val.images,
                val.labels,
                EXPORT_DIR,
                cfg.export,
                source=source,
                metrics_path=EXPORT_METRICS,
                eval_ids=val.ids,
                eval_split=EVAL_SPLIT,
            )
        except ExportGateError as err:
            metrics = err.report["metrics"]
            metrics["eval_split"] = EVAL_SPLIT
            write_metrics(metrics, EXPORT_METRICS)  # no model was selected: test stays unscored
            mlflow.log_metrics(flat_metrics(metrics))
            mlflow.set_tag("export.gates", "failed")
            sys.exit(f"export (gates on {EVAL_SPLIT}): {err}")
        metrics = report["metrics"]
        metrics["eval_split"] = EVAL_SPLIT
        n_classes = int(metrics["num_classes"])
        bundle = BundleModel(report["bundle_dir"]) if report.get("bundle_dir") else None
        test_scores, test_outputs = score_split(
            model, report["files"]["tflite_int8"]["path"], test.images, test.labels, n_classes, tta=metrics["tta"]
        )
        add_test_section(metrics, test_scores, EXPORT_DIR / "exports" / "report.md")
        report_files = [EXPORT_METRICS]
        int8 = write_int8_report(
            test_outputs,
            test.labels,
            test.images,
            list(meta["class_names"]),
            EXPORT_METRICS.parent,
            temperature=bundle.temperature if bundle else 1.0,
            softmax_in_model=bundle.softmax_in_model if bundle else False,
        )
        metrics[REPORT_SPLIT]["tflite_int8"]["report"] = int8["metrics"]
        metrics[REPORT_SPLIT]["per_class"] = int8["per_class"]
        report_files += int8["files"]
        if report.get("postprocessing") and bundle is not None:
            report_files += add_postprocessing_split(
                metrics,
                report["postprocessing"],
                report["bundle_dir"],
                test.images,
                test.labels,
                EXPORT_METRICS.parent,
                REPORT_SPLIT,
                EXPORT_DIR / "exports" / "report.md",
                outputs=test_outputs["tflite_int8"],
            )
        write_metrics(metrics, EXPORT_METRICS)
        log.info(
            "val (gates): int8 macro-F1 %.4f; test (reported once): int8 accuracy %.4f, macro-F1 %.4f",
            metrics["tflite_int8"]["macro_f1"],
            test_scores["tflite_int8"]["accuracy"],
            test_scores["tflite_int8"]["macro_f1"],
        )
        mlflow.log_metrics(flat_metrics(metrics))
        mlflow.set_tags(
            {
                "export.gates": "passed",
                "export.eval_split": EVAL_SPLIT,
                "edgetpu.compatible": str(report["edgetpu"]["compatible"]).lower(),
            }
        )
        mlflow.log_artifacts(str(EXPORT_DIR / "bundle"), artifact_path="export/bundle")
        for path in report_files:  # metrics.json, the int8 report, calibration and unknown-threshold files
            sub = Path(path).parent.relative_to(EXPORT_METRICS.parent).as_posix()
            mlflow.log_artifact(str(path), artifact_path="export" if sub == "." else f"export/{sub}")
        for name in ("export_report.json", "edgetpu_report.json", "report.md", "eval_predictions.npz"):
            path = EXPORT_DIR / "exports" / name
            if path.is_file():
                mlflow.log_artifact(str(path), artifact_path="export")


if __name__ == "__main__":
    main()
