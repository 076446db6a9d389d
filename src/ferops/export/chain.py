"""The export chain in one call, :func:`run_export`: a short sequence of named steps.

PyTorch -> ONNX (+ ONNX Runtime parity) -> onnx2tf SavedModel + fp32 TFLite -> full-int8 TFLite
(calibrated on stratified training images) -> accuracy / macro-F1 / agreement of every format on the
same eval images -> temperature + "unknown" threshold fitted on the int8 eval outputs -> CPU latency
per face -> EdgeTPU check (compiler when installed, static always) -> gates -> deployment bundle
(with the temperature and threshold in its metadata).

Output layout (``out_dir``)::

    exports/model.onnx  exports/saved_model/  exports/model_fp32.tflite  exports/model_int8.tflite
    exports/edgetpu/ (compiler output, when it ran)  exports/export_report.json  exports/report.md
    exports/eval_predictions.npz  (row ids, labels, predicted class per format on the eval rows scored)
    metrics.json        (numbers only: for `dvc metrics` and MLflow, see `flat_metrics`)
    calibration.json  reliability_calibration_<eval split>.png  threshold_curve.csv
    threshold_recommendation.json  threshold_analysis.png
                        (next to metrics.json: temperature scaling and the unknown threshold, see
                         `POSTPROCESSING_FILES`; ferops.export.split_scores adds the test split)
    bundle/             (model_int8.tflite, labels.txt, model_metadata.json, model_int8_edgetpu.tflite when
                         edgetpu_compiler compiled it; only when the gates pass)

No MLflow here: the DVC stage logs ``metrics.json`` and the files. The model is the deployable
``nn.Module`` (float [B, 1, 48, 48] raw pixels 0..255 -> logits [B, C], preprocessing inside).
"""

from __future__ import annotations

import io
import json
import logging
import shutil
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ferops.data.class_map import recorded_class_map
from ferops.evaluation.calibration import TemperatureFit, calibration_record, fit_temperature
from ferops.evaluation.metrics import accuracy, macro_f1
from ferops.evaluation.report import write_reliability_calibration, write_threshold_report
from ferops.evaluation.threshold import recommend_threshold, threshold_curve
from ferops.export.bundle import write_bundle
from ferops.export.config import ExportConfig
from ferops.export.edgetpu import EdgeTPUReport, check_edgetpu
from ferops.export.edgetpu_compiler import find_edgetpu_compiler, run_edgetpu_compiler
from ferops.export.gates import ExportGateError, evaluate_export_gates
from ferops.export.latency import onnx_latency, tflite_latency, torch_latency
from ferops.export.onnx import export_onnx, onnx_export_info, onnx_logits, torch_logits
from ferops.export.report import FORMATS, converter_versions, render_markdown
from ferops.export.tensorflow import TensorFlowArtifacts, onnx_to_tensorflow
from ferops.export.tflite import quantize_int8, select_calibration
from ferops.runtime.bundle import calibrated_probs, predict_views
from ferops.runtime.tflite import TFLiteModel

__all__ = ["FORMATS", "POSTPROCESSING_FILES", "flat_metrics", "parity", "reliability_file", "render_markdown", "run_export"]

log = logging.getLogger("ferops.export")

_STEPS = 9

# Post-processing report files, written next to metrics.json (plus reliability_file(split) per split).
POSTPROCESSING_FILES = ("calibration.json", "threshold_curve.csv", "threshold_recommendation.json", "threshold_analysis.png")


def reliability_file(split: str) -> str:
    """The before / after temperature scaling reliability diagram of one split."""
    return f"reliability_calibration_{split}.png"


def parity(reference: np.ndarray, other: np.ndarray) -> dict[str, float]:
    """Top-1 agreement and max / mean |logit difference| of ``other`` against ``reference`` ([N, C] each)."""
    if reference.shape != other.shape:
        raise ValueError(f"logit shapes differ: {reference.shape} vs {other.shape}")
    diff = np.abs(reference.astype(np.float64) - other.astype(np.float64))
    return {
        "top1_agreement": float(np.mean(reference.argmax(1) == other.argmax(1))),
        "max_abs_logit_diff": float(diff.max()),
        "mean_abs_logit_diff": float(diff.mean()),
    }


def flat_metrics(metrics: Mapping[str, Any], prefix: str = "export") -> dict[str, float]:
    """``{"export/tflite_int8/accuracy": 0.71, ...}`` from the nested metrics dict (numbers and bools only)."""
    out: dict[str, float] = {}
    for k, v in metrics.items():
        key = f"{prefix}/{k}" if prefix else str(k)
        if isinstance(v, Mapping):
            out.update(flat_metrics(v, key))
        elif isinstance(v, (bool, int, float, np.integer, np.floating)):
            out[key] = float(v)
    return out


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _state_dict_bytes(model: nn.Module) -> int:
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.tell()


def _check_images(name: str, images: np.ndarray, labels: np.ndarray, size: int, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (size, size):
        raise ValueError(f"{name} images must be uint8 [N, {size}, {size}], got {images.dtype} {list(images.shape)}")
    if labels.shape != (images.shape[0],):
        raise ValueError(f"{name} labels must be [N] = [{images.shape[0]}], got {list(labels.shape)}")
    if images.shape[0] == 0:
        raise ValueError(f"no {name} images")
    if labels.min() < 0 or labels.max() >= n_classes:
        raise ValueError(f"{name} labels outside [0, {n_classes}): min {labels.min()}, max {labels.max()}")
    return images, labels.astype(np.int64)


def _scores(y: np.ndarray, logits: np.ndarray, n_classes: int) -> dict[str, float]:
    pred = logits.argmax(1)
    return {"accuracy": float(accuracy(y, pred)), "macro_f1": float(macro_f1(y, pred, n_classes))}


@contextmanager
def _step(k: int, what: str, timings: dict[str, float], key: str) -> Iterator[None]:
    """Log step ``k`` of the chain and record its duration as ``timings[key]``."""
    log.info("[%d/%d] %s", k, _STEPS, what)
    t = time.perf_counter()
    yield
    timings[key] = time.perf_counter() - t


def run_export(
    model: nn.Module,
    meta: Mapping[str, Any],
    calib_images: np.ndarray,
    calib_labels: np.ndarray,
    eval_images: np.ndarray,
    eval_labels: np.ndarray,
    out_dir: str | Path,
    cfg: ExportConfig | Mapping[str, Any] | None = None,
    *,
    source: Mapping[str, Any] | None = None,
    bundle_dir: str | Path | None = None,
    metrics_path: str | Path | None = None,
    eval_ids: np.ndarray | None = None,
    eval_split: str = "eval",
) -> dict[str, Any]:
    """Run the export chain (module docstring) and return the report dict.

        ``meta``: ``{"class_names", "preprocessing", "model_name", ...}`` as from
        ``ferops.models.checkpoint.load_deployable``. ``calib_*``: training images uint8 [N, 48, 48]
        and labels (the calibration subset is drawn from them, stratified); ``eval_*``: the split every
        format is scored on (and the gates decided on: pass the val split, never test); ``eval_ids``: their
    row ids and ``eval_split`` their split name, recorded with the per-row predictions in
    ``exports/eval_predictions.npz`` (positions when no ids). ``source``: lineage for the bundle, e.g.
    ``{"run_id": ..., "checkpoint": ...}``.

        Returns ``{"metrics": <metrics.json>, "gates": [...], "quantization": ..., "edgetpu": ...,
        "latency": ..., "files": ..., "config": ..., ...}``. Raises :class:`ExportGateError` after writing
        metrics.json and the report (but no bundle) when an enforced gate fails.
    """
    cfg = ExportConfig.from_mapping(cfg)
    out_dir = Path(out_dir)
    exports = _fresh_exports_dir(out_dir / "exports")
    bundle_dir = Path(bundle_dir) if bundle_dir is not None else out_dir / "bundle"
    metrics_path = Path(metrics_path) if metrics_path is not None else out_dir / "metrics.json"
    class_names = [str(c) for c in meta["class_names"]]
    n_classes = len(class_names)
    if any(p.device.type != "cpu" for p in model.parameters()):
        raise ValueError("run_export expects the model on the CPU (load_deployable loads it there)")
    calib_images, calib_labels = _check_images("calibration", calib_images, calib_labels, cfg.image_size, n_classes)
    eval_images, eval_labels, eval_ids = _eval_rows(eval_images, eval_labels, eval_ids, n_classes, cfg)
    timings: dict[str, float] = {}
    t_all = time.perf_counter()

    with _step(1, f"PyTorch reference logits on {len(eval_labels)} eval images", timings, "pytorch"):
        logits = {"pytorch": predict_views(lambda x: _pytorch_logits(model, x, n_classes), eval_images, cfg.tta)}
    with _step(
        2,
        f"ONNX export ({cfg.onnx_exporter} exporter, opset {cfg.opset}, static batch 1) + onnx.checker + ONNX Runtime parity",
        timings,
        "onnx",
    ):
        onnx_path, logits["onnx"] = _to_onnx(model, exports, eval_images, cfg)
    with _step(3, "onnx2tf -> SavedModel (NHWC) + fp32 TFLite", timings, "tensorflow"):
        tf_art, logits["tflite_fp32"] = _to_tensorflow(onnx_path, exports, eval_images, cfg)
    calib_idx = select_calibration(calib_labels, cfg.n_calibration, seed=cfg.calibration_seed)
    with _step(
        4,
        f"full-int8 TFLite ({cfg.input_dtype} in / {cfg.output_dtype} out), {len(calib_idx)} calibration images",
        timings,
        "int8",
    ):
        int8_path = exports / "model_int8.tflite"
        quant = _to_int8(tf_art, calib_images[calib_idx], calib_labels[calib_idx], class_names, int8_path, cfg)
        int8_model = TFLiteModel(int8_path)
        logits["tflite_int8"] = predict_views(lambda x: int8_model.predict_logits(x, progress=cfg.progress), eval_images, cfg.tta)
    with _step(5, "accuracy / macro-F1 / agreement per format", timings, "scores"):
        metrics = _score_formats(logits, eval_labels, len(calib_idx), n_classes)
        metrics["tta"] = cfg.tta  # every format above was scored on these views; latency below is one view
        _save_eval_predictions(exports / "eval_predictions.npz", logits, eval_ids, eval_labels, n_classes, eval_split)
    with _step(6, f"temperature scaling + unknown threshold on the int8 {eval_split} outputs", timings, "postprocessing"):
        # logits["tflite_int8"] are the dequantised outputs of the bundle's model file through the
        # runtime's TFLiteModel, averaged over the export.tta views: what BundleModel.predict_outputs
        # returns on these rows
        post = _fit_postprocessing(logits["tflite_int8"], eval_labels, cfg, eval_split, metrics_path.parent)
        metrics.update(post.pop("metrics"))
    with _step(
        7, f"CPU latency per face: batch 1, {cfg.latency_threads} thread(s), {cfg.n_latency_runs} runs", timings, "latency"
    ):
        latency = _latency(model, eval_images[0], onnx_path, tf_art, int8_path, cfg)
        files = _file_sizes(model, onnx_path, tf_art, int8_path)
        for fmt in FORMATS:
            metrics[fmt].update(
                latency_median_ms=latency[fmt]["median_ms"],
                latency_p95_ms=latency[fmt]["p95_ms"],
                size_bytes=files[fmt]["size_bytes"],
            )
    compiler = find_edgetpu_compiler(cfg.edgetpu_compiler)
    with _step(
        8, "EdgeTPU: static check" + (f" + {compiler}" if compiler else " (edgetpu_compiler not on PATH)"), timings, "edgetpu"
    ):
        edgetpu = _edgetpu_check(int8_path, exports, compiler, cfg)
        metrics["edgetpu"] = _edgetpu_metrics(edgetpu)

    with _step(9, "gates + metrics.json + bundle", timings, "finish"):
        edgetpu_dict = edgetpu.to_dict()
        report: dict[str, Any] = {
            "metrics": metrics,
            "gates": [],
            "quantization": quant,
            "edgetpu": {
                k: edgetpu_dict[k]
                for k in (
                    "compatible",
                    "summary",
                    "n_ops",
                    "n_mapped",
                    "mapped_fraction",
                    "first_cpu_op",
                    "model_issues",
                    "op_counts",
                    "compiler",
                )
            },
            "latency": latency,
            "files": files,
            "class_names": class_names,
            "model_name": meta.get("model_name"),
            "source": dict(source or {}),
            "config": cfg.to_dict(),
            "converters": converter_versions(onnx_export_info(onnx_path)),
            "timings_s": timings,
            "postprocessing": post,
            "bundle_dir": None,
        }
        if bundle_dir.exists():  # never leave an older bundle next to a newer, possibly failing, export
            shutil.rmtree(bundle_dir)
        error = _decide_gates(metrics, cfg, edgetpu_dict, report)
        if error is None:
            _write_bundle(bundle_dir, int8_path, class_names, meta, source, quant, edgetpu, post["bundle_metadata"])
            report["bundle_dir"] = str(bundle_dir)
        if not cfg.keep_saved_model:
            shutil.rmtree(tf_art.saved_model_dir, ignore_errors=True)
            files["saved_model"]["path"] = None
    timings["total"] = time.perf_counter() - t_all
    _write_reports(metrics, report, metrics_path, exports)
    int8 = metrics["tflite_int8"]
    log.info(
        "export done in %.1f s: int8 accuracy %.4f (drop %.2f points), agreement %.2f%%, %s",
        timings["total"],
        int8["accuracy"],
        int8["accuracy_drop_points"],
        100 * int8["top1_agreement"],
        edgetpu.summary(),
    )
    if error is not None:
        raise error
    return report


# -- the steps ---------------------------------------------------------------------------------
def _fresh_exports_dir(exports: Path) -> Path:
    if exports.exists():  # exports/ is ours: no stale files from an earlier run (DVC outs, compiler output)
        shutil.rmtree(exports)
    exports.mkdir(parents=True)
    return exports


def _eval_rows(
    images: np.ndarray, labels: np.ndarray, ids: np.ndarray | None, n_classes: int, cfg: ExportConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The eval rows every format is scored on: checked, with ids, at most ``max_eval_images`` (stratified)."""
    images, labels = _check_images("eval", images, labels, cfg.image_size, n_classes)
    ids = np.arange(len(labels)).astype(str) if ids is None else np.asarray(ids).astype(str)
    if ids.shape != labels.shape:
        raise ValueError(f"eval_ids must be [N] = [{len(labels)}], got {list(ids.shape)}")
    if cfg.max_eval_images is not None and images.shape[0] > cfg.max_eval_images:
        keep = np.sort(select_calibration(labels, cfg.max_eval_images, seed=cfg.calibration_seed))
        images, labels, ids = images[keep], labels[keep], ids[keep]
    return images, labels, ids


def _pytorch_logits(model: nn.Module, images: np.ndarray, n_classes: int) -> np.ndarray:
    model.eval()
    logits = torch_logits(model, images)
    if logits.shape[1] != n_classes:
        raise ValueError(f"model returns {logits.shape[1]} logits but meta lists {n_classes} classes")
    return logits


def _to_onnx(model: nn.Module, exports: Path, images: np.ndarray, cfg: ExportConfig) -> tuple[Path, np.ndarray]:
    onnx_path = export_onnx(
        model,
        exports / "model.onnx",
        opset=cfg.opset,
        image_size=cfg.image_size,
        input_name=cfg.input_name,
        output_name=cfg.output_name,
        simplify=cfg.simplify_onnx,
        exporter=cfg.onnx_exporter,
    )
    return onnx_path, predict_views(lambda x: onnx_logits(onnx_path, x, progress=cfg.progress), images, cfg.tta)


def _to_tensorflow(
    onnx_path: Path, exports: Path, images: np.ndarray, cfg: ExportConfig
) -> tuple[TensorFlowArtifacts, np.ndarray]:
    tf_art = onnx_to_tensorflow(onnx_path, exports / "saved_model", float32_tflite=exports / "model_fp32.tflite")
    fp32_model = TFLiteModel(tf_art.float32_tflite)
    size = cfg.image_size
    if fp32_model.input.shape != (1, size, size, 1):
        raise RuntimeError(f"onnx2tf produced input {list(fp32_model.input.shape)}, expected NHWC [1, {size}, {size}, 1]")
    return tf_art, predict_views(lambda x: fp32_model.predict_logits(x, progress=cfg.progress), images, cfg.tta)


def _to_int8(
    tf_art: TensorFlowArtifacts,
    calib_images: np.ndarray,
    calib_labels: np.ndarray,
    class_names: list[str],
    int8_path: Path,
    cfg: ExportConfig,
) -> dict[str, Any]:
    """Full-int8 TFLite at ``int8_path``; returns its quantisation record (with the calibration subset's make-up)."""
    quant = quantize_int8(
        tf_art.saved_model_dir,
        calib_images,
        int8_path,
        input_dtype=cfg.input_dtype,
        output_dtype=cfg.output_dtype,
        pin_input_range=cfg.pin_input_range,
    )
    quant["calibration_class_counts"] = {class_names[c]: int(n) for c, n in zip(*np.unique(calib_labels, return_counts=True))}
    quant["calibration_seed"] = cfg.calibration_seed
    return quant


def _score_formats(logits: Mapping[str, np.ndarray], labels: np.ndarray, n_calibration: int, n_classes: int) -> dict[str, Any]:
    """The metrics.json numbers: accuracy / macro-F1 per format, agreement and logit gap vs PyTorch, int8 drops."""
    metrics: dict[str, Any] = {"n_eval": len(labels), "n_calibration": n_calibration, "num_classes": n_classes}
    for fmt in FORMATS:
        metrics[fmt] = _scores(labels, logits[fmt], n_classes)
        if fmt != "pytorch":
            p = parity(logits["pytorch"], logits[fmt])
            metrics[fmt].update(top1_agreement=p["top1_agreement"], max_abs_logit_diff=p["max_abs_logit_diff"])
    int8 = metrics["tflite_int8"]
    int8["top1_agreement_vs_tflite_fp32"] = parity(logits["tflite_fp32"], logits["tflite_int8"])["top1_agreement"]
    int8["accuracy_drop_points"] = 100.0 * (metrics["pytorch"]["accuracy"] - int8["accuracy"])
    int8["macro_f1_drop_points"] = 100.0 * (metrics["pytorch"]["macro_f1"] - int8["macro_f1"])
    return metrics


def _save_eval_predictions(
    path: Path, logits: Mapping[str, np.ndarray], ids: np.ndarray, labels: np.ndarray, n_classes: int, split: str
) -> None:
    # per-row predictions with their ids: what a paired comparison of two models needs (ferops.registry.evidence)
    with open(path, "wb") as f:
        np.savez(
            f,
            ids=ids,
            labels=labels,
            num_classes=np.int64(n_classes),
            split=np.str_(split),
            **{f"pred/{fmt}": logits[fmt].argmax(1).astype(np.int64) for fmt in FORMATS},
        )


def _fit_postprocessing(
    outputs: np.ndarray, labels: np.ndarray, cfg: ExportConfig, split: str, report_dir: Path
) -> dict[str, Any]:
    """Temperature (T = 1 when ``export.calibration`` is off) and the unknown threshold on one split's
    int8 outputs (logits: the exported model has no softmax), their report files in ``report_dir``.

    Returns ``{"calibration": calibration.json, "recommendation": threshold_recommendation.json,
    "curve": the sweep, "bundle_metadata": write_bundle's ``postprocessing``, "metrics": for metrics.json,
    "split", "files"}``; :func:`ferops.export.split_scores.add_postprocessing_split` adds another split."""
    n_bins = cfg.calibration.n_bins
    if cfg.calibration.enabled:
        fit = fit_temperature(outputs, labels)
    else:
        nll_1 = fit_temperature(outputs, labels).nll_before  # the same objective at T = 1, for the record
        fit = TemperatureFit(temperature=1.0, nll_before=nll_1, nll_after=nll_1, n=len(labels), at_bound=False)
    if fit.at_bound:
        log.warning(
            "temperature %.3g is at the edge of its search range: the %s outputs give no interior optimum", fit.temperature, split
        )
    report_dir.mkdir(parents=True, exist_ok=True)
    scores = write_reliability_calibration(
        outputs, labels, fit.temperature, report_dir / reliability_file(split), n_bins=n_bins, title=f"int8 TFLite, {split}"
    )
    record = calibration_record(fit, {split: scores}) | {"enabled": cfg.calibration.enabled, "fitted_on": split, "n_bins": n_bins}
    u = cfg.unknown
    curve = threshold_curve(calibrated_probs(outputs, fit.temperature), labels)
    rec = recommend_threshold(curve, u.policy, u.target_accuracy, u.target_coverage, u.min_coverage)
    rec = {**{k: v for k, v in rec.items() if k != "val"}, "fitted_on": split, split: rec["val"]}
    (report_dir / "calibration.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    write_threshold_report(curve, rec, report_dir, title=f"int8 TFLite, {split}")
    log.info(
        "temperature %.4f (%s NLL %.4f -> %.4f, ECE %.4f -> %.4f); unknown threshold %.2f (%s): coverage %.3f, accepted accuracy %s",
        fit.temperature,
        split,
        scores["nll_before"],
        scores["nll_after"],
        scores["ece_before"],
        scores["ece_after"],
        rec["threshold"],
        rec["policy"],
        rec[split]["coverage"],
        rec[split]["accepted_accuracy"],
    )
    bundle_metadata = {
        "tta": cfg.tta,
        "temperature": fit.temperature,
        "calibration": {"method": record["method"], "fitted_on": split, "n": fit.n, "enabled": cfg.calibration.enabled},
        "unknown": {
            "threshold": rec["threshold"],
            "enabled": u.enabled,
            "policy": rec["policy"],
            "target": rec["target"],
            "reached": rec["reached"],
            "accept_if": rec["accept_if"],
            "fitted_on": split,
            "coverage": rec[split]["coverage"],
            "accepted_accuracy": rec[split]["accepted_accuracy"],
        },
    }
    return {
        "split": split,
        "calibration": record,
        "recommendation": rec,
        "curve": curve,
        "bundle_metadata": bundle_metadata,
        "metrics": postprocessing_metrics(record, rec),
        "files": [str(report_dir / f) for f in (*POSTPROCESSING_FILES, reliability_file(split))],
    }


def postprocessing_metrics(calibration: Mapping[str, Any], recommendation: Mapping[str, Any]) -> dict[str, Any]:
    """The metrics.json sections ``calibration`` and ``unknown`` (numbers, per scored split) from
    calibration.json and threshold_recommendation.json."""
    splits = [k for k, v in calibration.items() if isinstance(v, Mapping)]
    keys = ("n_accepted", "coverage", "accepted_accuracy", "accepted_macro_f1")
    return {
        "calibration": {"temperature": calibration["temperature"], **{s: dict(calibration[s]) for s in splits}},
        "unknown": {
            "threshold": recommendation["threshold"],
            "target_reached": recommendation["reached"],
            **{s: {k: recommendation[s][k] for k in keys} for s in splits if s in recommendation},
        },
    }


def _latency(
    model: nn.Module, face: np.ndarray, onnx_path: Path, tf_art: TensorFlowArtifacts, int8_path: Path, cfg: ExportConfig
) -> dict[str, dict[str, float]]:
    kw = {
        "image_size": cfg.image_size,
        "threads": cfg.latency_threads,
        "n_runs": cfg.n_latency_runs,
        "n_warmup": cfg.n_latency_warmup,
    }
    return {
        "pytorch": torch_latency(model, face, **kw),
        "onnx": onnx_latency(onnx_path, face, **kw),
        "tflite_fp32": tflite_latency(tf_art.float32_tflite, face, **kw),
        "tflite_int8": tflite_latency(int8_path, face, **kw),
    }


def _file_sizes(model: nn.Module, onnx_path: Path, tf_art: TensorFlowArtifacts, int8_path: Path) -> dict[str, dict[str, Any]]:
    return {
        "pytorch": {"path": None, "size_bytes": _state_dict_bytes(model), "what": "state_dict (torch.save)"},
        "onnx": {"path": str(onnx_path), "size_bytes": onnx_path.stat().st_size},
        "saved_model": {"path": str(tf_art.saved_model_dir), "size_bytes": _dir_size(tf_art.saved_model_dir)},
        "tflite_fp32": {"path": str(tf_art.float32_tflite), "size_bytes": tf_art.float32_tflite.stat().st_size},
        "tflite_int8": {"path": str(int8_path), "size_bytes": int8_path.stat().st_size},
    }


def _edgetpu_check(int8_path: Path, exports: Path, compiler: str | None, cfg: ExportConfig) -> EdgeTPUReport:
    """Static check always, the compiler's verdict when it is installed; writes exports/edgetpu_report.json."""
    edgetpu = check_edgetpu(int8_path)
    if compiler:
        edgetpu.compiler = run_edgetpu_compiler(int8_path, exports / "edgetpu", compiler, cfg.edgetpu_compiler_timeout_s)
        edgetpu.compiler.pop("log", None)  # kept in exports/edgetpu/edgetpu_compiler.log
    (exports / "edgetpu_report.json").write_text(json.dumps(edgetpu.to_dict(), indent=2) + "\n", encoding="utf-8")
    log.info("%s", edgetpu.summary())
    return edgetpu


def _edgetpu_metrics(edgetpu: EdgeTPUReport) -> dict[str, Any]:
    out = {
        "compatible": bool(edgetpu.compatible),
        "mapped_fraction": edgetpu.mapped_fraction,
        "n_ops": edgetpu.n_ops,
        "n_mapped": edgetpu.n_mapped,
    }
    if edgetpu.compiler is not None and edgetpu.compiler.get("on_chip_memory_used_bytes") is not None:
        out["on_chip_memory_used_bytes"] = edgetpu.compiler["on_chip_memory_used_bytes"]
    return out


def _decide_gates(
    metrics: dict[str, Any], cfg: ExportConfig, edgetpu: dict[str, Any], report: dict[str, Any]
) -> ExportGateError | None:
    """Record every gate in the report and metrics; the error to raise (after the files are written), if any."""
    results = evaluate_export_gates(metrics, cfg, edgetpu)
    failures = [r for r in results if not r.passed]
    for f in failures:
        log.warning("export gate failed: %s", f.message())
    report["gates"] = [r.to_dict() for r in results]
    metrics["gates_passed"] = all(r.passed for r in results)
    return ExportGateError(failures, report) if failures and cfg.gates.enforce else None


def _write_bundle(
    bundle_dir: Path,
    int8_path: Path,
    class_names: list[str],
    meta: Mapping[str, Any],
    source: Mapping[str, Any] | None,
    quant: Mapping[str, Any],
    edgetpu: EdgeTPUReport,
    postprocessing: Mapping[str, Any] | None = None,
) -> None:
    write_bundle(
        bundle_dir,
        int8_path,
        class_names,
        preprocessing=meta.get("preprocessing"),
        softmax_in_model=False,
        source={"model_name": meta.get("model_name"), **dict(source or {})},
        quantization={k: quant[k] for k in ("n_calibration", "calibration_seed")} | _quantization_method(meta),
        edgetpu={"compatible": edgetpu.compatible, "summary": edgetpu.summary()},
        edgetpu_tflite=(edgetpu.compiler or {}).get("compiled_model") if (edgetpu.compiler or {}).get("ok") else None,
        postprocessing=postprocessing,
        class_map=_class_map_record(meta),
    )


def _quantization_method(meta: Mapping[str, Any]) -> dict[str, Any]:
    """How the weights met int8: post-training calibration, after a QAT fine-tune when the
    checkpoint records one (ferops.training.qat)."""
    method = "post-training full-integer, per-channel weights"
    if meta.get("qat"):
        return {"method": f"quantisation-aware fine-tune, then {method}", "qat": dict(meta["qat"])}
    return {"method": method}


def _class_map_record(meta: Mapping[str, Any]) -> dict[str, Any] | None:
    """The training run's class map (source class -> class), so the bundle can be scored on labelled
    data later (``python -m ferops.evaluate BUNDLE DATA``); None for a meta without one."""
    class_map = recorded_class_map(meta)
    return None if class_map is None else class_map.to_config()


def _write_reports(metrics: Mapping[str, Any], report: Mapping[str, Any], metrics_path: Path, exports: Path) -> None:
    metrics_path.parent.mkdir(parents=True, exist_ok=True)
    metrics_path.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    (exports / "export_report.json").write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    (exports / "report.md").write_text(render_markdown(report), encoding="utf-8")
