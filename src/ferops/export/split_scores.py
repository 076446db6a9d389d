"""Scoring the report split after the export gates: the selected model (PyTorch and int8 TFLite)
on the test split, once, reported under ``metrics["test"]`` and in report.md; nothing decides on it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

REPORT_SPLIT = "test"  # scored once after the gates, reported only


def score_split(model, int8_path: str | Path, images: np.ndarray, labels: np.ndarray, n_classes: int) -> dict[str, Any]:
    """Accuracy and macro-F1 of the PyTorch model and the int8 TFLite model on one split."""
    from ferops.evaluation.metrics import accuracy, macro_f1
    from ferops.export.onnx import torch_logits
    from ferops.runtime import TFLiteModel

    images = np.asarray(images)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    labels = np.asarray(labels, dtype=np.int64)
    model.eval()
    preds = {
        "pytorch": torch_logits(model, images).argmax(1),
        "tflite_int8": TFLiteModel(int8_path).predict_logits(images).argmax(1),
    }
    out: dict[str, Any] = {"n": len(labels)}
    for fmt, pred in preds.items():
        out[fmt] = {"accuracy": float(accuracy(labels, pred)), "macro_f1": float(macro_f1(labels, pred, n_classes))}
    out["tflite_int8"]["accuracy_drop_points"] = 100.0 * (out["pytorch"]["accuracy"] - out["tflite_int8"]["accuracy"])
    return out


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


def write_metrics(metrics: Mapping[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
