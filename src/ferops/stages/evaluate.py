"""evaluate: checkpoint + prepared test split -> metrics.json, confusion data and plots, and the
Grad-CAM / Grad-CAM++ panels of a seeded probe set (explain/: one PNG per class + index.json)."""

from __future__ import annotations

import mlflow

from ferops.data import load_prepared
from ferops.evaluation.explain import write_explanations
from ferops.evaluation.metrics import add_prefix
from ferops.evaluation.predict import predict_probs
from ferops.evaluation.report import write_evaluation_report
from ferops.models.checkpoint import load_deployable
from ferops.stages.common import CHECKPOINT, PREPARED_DIR, REPORTS, load_params, pipeline_run, setup_logging

OUT = REPORTS / "evaluate"


def main() -> None:
    setup_logging()
    cfg = load_params()
    model, meta = load_deployable(CHECKPOINT)
    test = load_prepared(PREPARED_DIR).splits["test"]
    probs = predict_probs(model, test.images)
    report = write_evaluation_report(probs, test.labels, test.images, meta["class_names"], OUT)
    write_explanations(model, test.images, test.labels, probs, meta["class_names"], OUT / "explain", ids=test.ids.tolist())
    with pipeline_run(cfg):
        mlflow.log_metrics(add_prefix(report["metrics"], "eval/"))
        mlflow.log_artifacts(str(OUT), artifact_path="evaluate")  # explain/ included


if __name__ == "__main__":
    main()
