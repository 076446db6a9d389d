"""Model-version tag names, and where their values come from.

Every number the promotion reads is a version tag, so a decision can be checked (and redone) from
the registry alone. Tag values are strings; `tag_float` / `tag_bool` read them back.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

from mlflow.entities import Run

# lineage
GIT_COMMIT = "git.commit"
GIT_DIRTY = "git.dirty"
DATA_NAME = "data.name"
DATA_FINGERPRINT = "data.fingerprint"
DATA_CLASSES = "data.class_map"  # the class names, comma-joined (run tag of ferops.tracking.data_tags)
CONFIG_HASH = "config.hash"
DVC_EXP = "dvc.exp_name"  # same key as the run tag the DVC stages set (ferops.stages.common.dvc_tags)
RUN_NAME = "run.name"
# deployable metrics (export stage: int8 TFLite on the VAL split, which every choice uses; CPU
# latency, EdgeTPU check). The test split is scored once afterwards and only reported (`*.test_*`).
INT8_ACC = "int8.acc"
INT8_MACRO_F1 = "int8.macro_f1"
INT8_ACC_DROP = "int8.acc_drop_points"
INT8_AGREEMENT = "int8.agreement"
INT8_SIZE = "int8.size_bytes"
LATENCY_MS = "latency.ms"
LATENCY_P95_MS = "latency.p95_ms"
EDGETPU_COMPATIBLE = "edgetpu.compatible"
EDGETPU_MAPPED = "edgetpu.mapped_fraction"
EXPORT_GATES = "export.gates_passed"
EVAL_SPLIT = "export.eval_split"  # the split the int8.* tags above were measured on ("val"; absent before)
INT8_TEST_ACC = "int8.test_acc"  # reported, never compared
INT8_TEST_MACRO_F1 = "int8.test_macro_f1"
# from the int8 bundle's full report on test (export stage, reports/export/int8_test/metrics.json); reported only
INT8_TEST_BALANCED_ACC = "int8.test_balanced_acc"
INT8_TEST_NLL = "int8.test_nll"
INT8_TEST_ECE = "int8.test_ece"
# the data split record of the training run (run tags `split.<key>`, copied onto the version)
SPLIT_PREFIX = "split."
SPLIT_VAL_DIGEST = "split.val_digest"
SPLIT_VAL_SOURCE = "split.val_source"
# int8 predictions on the val rows, for the paired bootstrap (a run artifact; see register.py)
PREDICTIONS_URI = "eval.predictions_uri"
PREDICTIONS_SHA256 = "eval.predictions_sha256"
# fp32 metrics of the training run
FP32_TEST_ACC = "fp32.test_acc"
FP32_TEST_MACRO_F1 = "fp32.test_macro_f1"
# promotion record
PROMOTION_DECISION = "promotion.decision"
PROMOTION_REASON = "promotion.reason"
PROMOTION_TIME = "promotion.timestamp"
PROMOTION_AGAINST = "promotion.compared_with"
PREVIOUS_CHAMPION = "promotion.previous_champion"

# Version tag <- key of the export stage's metrics.json (ferops.export.run_export), nested keys joined by "/".
EXPORT_METRIC_KEYS: dict[str, str] = {
    INT8_ACC: "tflite_int8/accuracy",
    INT8_MACRO_F1: "tflite_int8/macro_f1",
    INT8_ACC_DROP: "tflite_int8/accuracy_drop_points",
    INT8_AGREEMENT: "tflite_int8/top1_agreement",
    INT8_SIZE: "tflite_int8/size_bytes",
    LATENCY_MS: "tflite_int8/latency_median_ms",
    LATENCY_P95_MS: "tflite_int8/latency_p95_ms",
    EDGETPU_COMPATIBLE: "edgetpu/compatible",
    EDGETPU_MAPPED: "edgetpu/mapped_fraction",
    EXPORT_GATES: "gates_passed",
    EVAL_SPLIT: "eval_split",
    INT8_TEST_ACC: "test/tflite_int8/accuracy",
    INT8_TEST_MACRO_F1: "test/tflite_int8/macro_f1",
    INT8_TEST_BALANCED_ACC: "test/tflite_int8/report/balanced_accuracy",
    INT8_TEST_NLL: "test/tflite_int8/report/nll",
    INT8_TEST_ECE: "test/tflite_int8/report/ece",
}
# The same number as a run metric (the export stage logs metrics.json with ferops.export.flat_metrics, prefix "export/").
RUN_INT8_ACC = "export/" + EXPORT_METRIC_KEYS[INT8_ACC]


def flatten(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{prefix}{key}/"))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _tag_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return repr(round(value, 6))
    return str(value)


def export_tags(metrics: Mapping[str, Any]) -> dict[str, str]:
    """The export stage's metrics.json -> version tags (missing fields are left out)."""
    flat = flatten(metrics)
    return {tag: _tag_value(flat[key]) for tag, key in EXPORT_METRIC_KEYS.items() if flat.get(key) is not None}


def lineage_tags(run: Run) -> dict[str, str]:
    """What produced the version: the pipeline run's lineage tags and fp32 test metrics."""
    run_tags, metrics = run.data.tags, run.data.metrics
    tags = {
        k: run_tags[k] for k in (GIT_COMMIT, GIT_DIRTY, DATA_NAME, DATA_FINGERPRINT, DATA_CLASSES, CONFIG_HASH) if k in run_tags
    }
    tags[RUN_NAME] = run.info.run_name or run.info.run_id
    dvc_exp = os.environ.get("DVC_EXP_NAME") or run_tags.get(DVC_EXP)
    if dvc_exp:
        tags[DVC_EXP] = dvc_exp
    for tag, key in ((FP32_TEST_ACC, "test/acc"), (FP32_TEST_MACRO_F1, "test/macro_f1")):
        if key in metrics:
            tags[tag] = _tag_value(float(metrics[key]))
    tags.update(split_tags(run_tags))
    return tags


def split_tags(run_tags: Mapping[str, str]) -> dict[str, str]:
    """The run's split record (`split.val_digest`, `split.val_source`, counts, ...), as set by training."""
    return {k: str(v) for k, v in run_tags.items() if k.startswith(SPLIT_PREFIX)}


def tag_float(tags: Mapping[str, str], key: str) -> float | None:
    try:
        value = float(tags[key])
    except (KeyError, TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def tag_bool(tags: Mapping[str, str], key: str) -> bool | None:
    value = str(tags.get(key, "")).strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    return None
