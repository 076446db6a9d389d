"""Scoring the report split after the export gates: the selected model (PyTorch and int8 TFLite)
on the test split, once, reported under ``metrics["test"]`` and in report.md; nothing decides on it."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import numpy as np

REPORT_SPLIT = "test"  # scored once after the gates, reported only


def score_split(
    model, int8_path: str | Path, images: np.ndarray, labels: np.ndarray, n_classes: int, tta: str = "none"
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Accuracy and macro-F1 of the PyTorch model and the int8 TFLite model on one split, both on the
    ``tta`` views the bundle averages, and the outputs they were computed from (``{"pytorch": logits,
    "tflite_int8": dequantised outputs}``), so the later reports of the same split need no second inference."""
    from ferops.evaluation.metrics import accuracy, macro_f1
    from ferops.export.onnx import torch_logits
    from ferops.runtime import TFLiteModel
    from ferops.runtime.bundle import predict_views

    labels = np.asarray(labels, dtype=np.int64)
    model.eval()
    int8_model = TFLiteModel(int8_path)
    outputs = {
        "pytorch": predict_views(lambda x: np.asarray(torch_logits(model, x), np.float32), images, tta),
        "tflite_int8": predict_views(int8_model.predict_logits, images, tta),
    }
    out: dict[str, Any] = {"n": len(labels)}
    for fmt, raw in outputs.items():
        pred = raw.argmax(1)
        out[fmt] = {"accuracy": float(accuracy(labels, pred)), "macro_f1": float(macro_f1(labels, pred, n_classes))}
    out["tflite_int8"]["accuracy_drop_points"] = 100.0 * (out["pytorch"]["accuracy"] - out["tflite_int8"]["accuracy"])
    return out, outputs


def write_int8_report(
    outputs: Mapping[str, np.ndarray],
    labels: np.ndarray,
    images: np.ndarray | None,
    class_names: list[str],
    report_dir: Path,
    temperature: float = 1.0,
    softmax_in_model: bool = False,
    split: str = REPORT_SPLIT,
) -> dict[str, Any]:
    """The evaluate stage's full report for the deployed int8 model on ``split`` (what the bundle
    runtime returns: temperature-scaled probabilities, the reliability diagram before and after) in
    ``report_dir / "int8_<split>"``, and the per-class fp32 -> int8 table (``int8_per_class_<split>.csv``:
    recall and F1 of each, delta in points; which classes quantisation hurts).

    ``outputs``: :func:`score_split`'s. Returns ``{"metrics": the int8 metrics.json, "per_class":
    {class: {...}}, "files": [...]}``."""
    from ferops.evaluation.metrics import per_class_metrics
    from ferops.evaluation.report import write_evaluation_report
    from ferops.runtime.bundle import calibrated_probs

    labels = np.asarray(labels, dtype=np.int64)
    raw = np.asarray(outputs["tflite_int8"], np.float32)
    probs = calibrated_probs(raw, temperature, softmax_in_model)
    result = write_evaluation_report(
        probs,
        labels,
        images,
        class_names,
        report_dir / f"int8_{split}",
        title=f"int8 TFLite bundle, {split}",
        probs_before=None if temperature == 1.0 else calibrated_probs(raw, 1.0, softmax_in_model),
        before_label="T = 1",
        after_label=f"T = {temperature:.3g}",
    )
    n = len(class_names)
    fp32 = per_class_metrics(labels, np.asarray(outputs["pytorch"]).argmax(1), n)
    int8 = per_class_metrics(labels, probs.argmax(1), n)
    per_class: dict[str, dict[str, float]] = {}
    for i, name in enumerate(class_names):
        row = {"support": float(fp32["support"][i])}
        for key in ("recall", "f1"):
            row[f"fp32_{key}"], row[f"int8_{key}"] = float(fp32[key][i]), float(int8[key][i])
            row[f"{key}_delta_points"] = 100.0 * (row[f"int8_{key}"] - row[f"fp32_{key}"])
        per_class[name] = row
    table = report_dir / f"int8_per_class_{split}.csv"
    with table.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["class", *next(iter(per_class.values()))])
        writer.writeheader()
        writer.writerows({"class": name, **{k: round(v, 6) for k, v in row.items()}} for name, row in per_class.items())
    files = cast(list, result["files"])
    return {"metrics": result["metrics"], "per_class": per_class, "files": [*files, table]}


def add_test_section(metrics: dict[str, Any], test: Mapping[str, Any], report_md: Path | None = None) -> dict[str, Any]:
    metrics[REPORT_SPLIT] = dict(test)
    if report_md is not None and report_md.is_file():
        lines = [
            "",
            f"Test split ({test['n']} images), scored once after the gates passed on val; reported, not used for any choice:",
            "",
            "| format | test accuracy | test macro-F1 |",
            "|---|---|---|",
        ]
        lines += [f"| {fmt} | {test[fmt]['accuracy']:.4f} | {test[fmt]['macro_f1']:.4f} |" for fmt in ("pytorch", "tflite_int8")]
        report_md.write_text(report_md.read_text() + "\n".join(lines) + "\n", encoding="utf-8")
    return metrics


def add_postprocessing_split(
    metrics: dict[str, Any],
    postprocessing: Mapping[str, Any],
    bundle_dir: str | Path,
    images: np.ndarray,
    labels: np.ndarray,
    report_dir: Path,
    split: str = REPORT_SPLIT,
    report_md: Path | None = None,
    outputs: np.ndarray | None = None,
) -> list[Path]:
    """Score the bundle's temperature and unknown threshold (fitted on val by run_export:
    ``report["postprocessing"]``) on another split, through the runtime as deployed
    (``BundleModel.predict_outputs`` and its post-processing): calibration.json and
    threshold_recommendation.json gain ``split``, the threshold figure its point, the split its
    reliability diagram, ``metrics["calibration"|"unknown"]`` its numbers. ``outputs``: the bundle
    model's outputs on these images when already computed (:func:`score_split`). Returns every
    post-processing report file, the fit split's included."""
    from ferops.evaluation.report import write_reliability_calibration, write_threshold_report
    from ferops.evaluation.threshold import accepted_scores
    from ferops.export.chain import POSTPROCESSING_FILES, postprocessing_metrics, reliability_file
    from ferops.runtime.bundle import BundleModel, calibrated_probs

    labels = np.asarray(labels, dtype=np.int64)
    bundle = BundleModel(bundle_dir)
    if outputs is None:
        outputs = bundle.predict_outputs(np.asarray(images))
    calibration = dict(postprocessing["calibration"])
    calibration[split] = write_reliability_calibration(
        outputs,
        labels,
        bundle.temperature,
        report_dir / reliability_file(split),
        outputs_are_probs=bundle.softmax_in_model,
        n_bins=int(calibration.get("n_bins", 15)),
        title=f"int8 TFLite, {split}",
    )
    recommendation = dict(postprocessing["recommendation"])
    # the bundle's own post-processing of the outputs above (BundleModel.predict_proba without a second inference)
    probs = calibrated_probs(outputs, bundle.temperature, bundle.softmax_in_model)
    recommendation[split] = accepted_scores(probs, labels, float(recommendation["threshold"]))
    (report_dir / "calibration.json").write_text(json.dumps(calibration, indent=2) + "\n", encoding="utf-8")
    write_threshold_report(
        postprocessing["curve"], recommendation, report_dir, title=f"int8 TFLite, {recommendation.get('fitted_on', 'val')}"
    )
    metrics.update(postprocessing_metrics(calibration, recommendation))
    if report_md is not None and report_md.is_file():
        c, r = calibration[split], recommendation[split]
        acc = "-" if r["accepted_accuracy"] is None else f"{r['accepted_accuracy']:.4f}"
        lines = [
            "",
            f"Temperature {bundle.temperature:.4f} (fitted on {calibration.get('fitted_on', 'val')}) on {split}: "
            f"NLL {c['nll_before']:.4f} -> {c['nll_after']:.4f}, ECE {c['ece_before']:.4f} -> {c['ece_after']:.4f}. "
            f"Unknown threshold {recommendation['threshold']:.2f} on {split}: coverage {r['coverage']:.4f}, accepted accuracy {acc}.",
        ]
        report_md.write_text(report_md.read_text() + "\n".join(lines) + "\n", encoding="utf-8")
    written = [Path(f) for f in postprocessing.get("files", [])]  # the val split's, from run_export
    return list(dict.fromkeys([*written, *(report_dir / f for f in (*POSTPROCESSING_FILES, reliability_file(split)))]))


def write_metrics(metrics: Mapping[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
