"""Evaluation and data reports: metrics, DVC plot data and figures written into one directory.

Callers (the ``evaluate`` / ``prepare`` stages, ``ferops.evaluate``) pass numpy arrays,
declare the files in ``dvc.yaml`` and log them to MLflow themselves; nothing here
imports torch or mlflow.

Files of :func:`write_evaluation_report` (each name preceded by ``prefix``):

=========================== ===============================================================
``metrics.json``            flat ``{key: float}``, see :func:`ferops.evaluation.metrics.classification_metrics`
``confusion.csv``           one row per sample, columns ``actual,predicted`` (class names) for
``confusion.json``          DVC's ``confusion`` template (the JSON is a list of the same rows)
``confusion_matrix.png``    counts and row-normalised matrix
``per_class_accuracy.png``  recall per class with support, accuracy and balanced accuracy
``reliability.png``         reliability diagram with the ECE in its title (before | after panels when
                            ``probs_before`` is given: the same rows before temperature scaling)
``reliability.json``        one row per bin: ``bin, bin_lower, bin_upper, confidence, accuracy, count``
                            (``null`` means for empty bins)
``reliability_before.json`` the same for ``probs_before`` (only when given)
``mistakes.png``            most confident mistakes (only when ``images`` is given)
``classification_report.txt`` sklearn's ``classification_report`` (+ ``nll`` and ``ece``)
=========================== ===============================================================

:func:`write_reliability_calibration` writes one split's reliability diagram before (``T = 1``) and
after temperature scaling (``ferops.evaluation.calibration``), side by side.

Files of :func:`write_threshold_report` (the unknown threshold, ``ferops.evaluation.threshold``):
``threshold_curve.csv`` (the val sweep, one row a threshold), ``threshold_recommendation.json``
(threshold, policy, target, and coverage / accepted accuracy on val and, when scored, test) and
``threshold_analysis.png``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from sklearn import metrics as skm

from ferops.evaluation.calibration import calibration_scores
from ferops.evaluation.figures import save_figure
from ferops.evaluation.metrics import (
    _check_probs,
    classification_metrics,
    confusion_matrix,
    metric_key,
    nll,
    per_class_metrics,
    reliability_bins,
)
from ferops.evaluation.plots_data import plot_class_distribution, plot_sample_grid
from ferops.evaluation.plots_eval import (
    plot_confident_mistakes,
    plot_confusion_matrix,
    plot_per_class_accuracy,
    plot_reliability_comparison,
    plot_reliability_diagram,
    plot_threshold_analysis,
)
from ferops.runtime.bundle import calibrated_probs

__all__ = [
    "classification_report_text",
    "data_stats",
    "write_data_report",
    "write_evaluation_report",
    "write_reliability_calibration",
    "write_threshold_report",
]


def _write_json(path: Path, obj: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=2, allow_nan=False)
        fh.write("\n")
    return path


def _write_json_rows(path: Path, rows: Sequence[Mapping[str, object]]) -> Path:
    """A JSON list written one object a line: compact for thousands of rows, still diffable."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = ",\n".join(json.dumps(row, allow_nan=False) for row in rows)
    path.write_text(f"[\n{body}\n]\n" if rows else "[]\n", encoding="utf-8")
    return path


def classification_report_text(
    y_true: object,
    y_pred: object,
    class_names: Sequence[str],
    extra: Mapping[str, float] | None = None,
    digits: int = 4,
) -> str:
    """sklearn's ``classification_report`` over the classes present in ``y_true`` or ``y_pred``.

    "macro avg" averages over those classes (see :mod:`ferops.evaluation.metrics`);
    "weighted avg" weights by support. Classes absent from both have no defined score:
    they get no row and are named on a line below the table. ``extra`` lines (e.g.
    ``{"nll": ..., "ece": ...}``) are appended below that.
    """
    names = [str(c) for c in class_names]
    pc = per_class_metrics(y_true, y_pred, len(names))  # validates the ids against the names
    present = np.flatnonzero((pc["support"] > 0) | (pc["predicted"] > 0))
    table = skm.classification_report(
        y_true, y_pred, labels=present, target_names=[names[i] for i in present], digits=digits, zero_division=0
    )
    lines = table.rstrip("\n").split("\n")
    absent = [n for i, n in enumerate(names) if i not in set(present.tolist())]
    if absent:
        lines += ["", f"not in macro avg (no samples, never predicted): {', '.join(absent)}"]
    if extra:
        width = max(len("weighted avg"), *(len(n) for n in names))
        lines.append("")
        lines += [f"{key:>{width}} {value:>10.{digits}f}" for key, value in extra.items()]
    return "\n".join(lines) + "\n"


def write_evaluation_report(
    probs: object,
    y_true: object,
    images: object | None,
    class_names: Sequence[str],
    out_dir: str | Path,
    prefix: str = "",
    n_bins: int = 15,
    max_mistakes: int = 24,
    title: str | None = None,
    probs_before: object | None = None,
    before_label: str = "before temperature scaling",
    after_label: str = "after",
) -> dict[str, object]:
    """Evaluate ``probs [N, C]`` against ``y_true [N]`` and write every report file into ``out_dir``.

    ``images`` (uint8 ``[N, 48, 48]``, aligned with ``probs``) feeds ``mistakes.png``;
    pass ``None`` to skip that figure. ``prefix`` goes in front of every file name
    (``"test_"`` -> ``test_metrics.json``), so several sets can share one directory;
    metric keys themselves are not prefixed (use ``metrics.add_prefix`` before logging).
    ``title`` (e.g. the set's name) is put in front of the figure titles. ``probs_before``: the same
    rows before calibration (e.g. ``T = 1``); the reliability diagram then shows both, and
    metrics.json gains ``nll_uncalibrated`` / ``ece_uncalibrated``.

    Returns ``{"metrics": flat dict as in metrics.json, "files": [Path, ...]}``.
    """
    p, t = _check_probs(probs, y_true)
    names = [str(c) for c in class_names]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lead = f"{title}: " if title else ""

    def path(name: str) -> Path:
        return out / f"{prefix}{name}"

    metrics = classification_metrics(p, t, names, n_bins=n_bins)
    y_pred = p.argmax(axis=1)
    confidence = p.max(axis=1)
    cm = confusion_matrix(t, y_pred, len(names))
    bins = reliability_bins(p, t, n_bins=n_bins)
    bins_before = None
    if probs_before is not None:
        pb, _ = _check_probs(probs_before, t)
        if pb.shape != p.shape:
            raise ValueError(f"probs_before {pb.shape} does not match probs {p.shape}")
        bins_before = reliability_bins(pb, t, n_bins=n_bins)
        metrics["nll_uncalibrated"] = nll(pb, t)
        metrics["ece_uncalibrated"] = bins_before.ece
    files: list[Path] = [_write_json(path("metrics.json"), metrics)]

    rows = [{"actual": names[a], "predicted": names[b]} for a, b in zip(t.tolist(), y_pred.tolist(), strict=True)]
    csv_path = path("confusion.csv")
    with csv_path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["actual", "predicted"])
        writer.writeheader()
        writer.writerows(rows)
    files.append(csv_path)
    files.append(_write_json_rows(path("confusion.json"), rows))
    files.append(_write_json_rows(path("reliability.json"), bins.rows()))
    if bins_before is not None:
        files.append(_write_json_rows(path("reliability_before.json"), bins_before.rows()))

    report = classification_report_text(t, y_pred, names, extra={"nll": metrics["nll"], "ece": metrics["ece"]})
    txt_path = path("classification_report.txt")
    txt_path.write_text((f"{title}\n\n" if title else "") + report, encoding="utf-8")
    files.append(txt_path)

    figures = [
        ("confusion_matrix.png", plot_confusion_matrix(cm, names, title=f"{lead}Confusion matrix")),
        ("per_class_accuracy.png", plot_per_class_accuracy(cm, names, title=f"{lead}Per-class accuracy (recall)")),
        (
            "reliability.png",
            plot_reliability_diagram(bins, title=f"{lead}Reliability diagram")
            if bins_before is None
            else plot_reliability_comparison(
                [(before_label, bins_before), (after_label, bins)], title=f"{lead}Reliability diagram"
            ),
        ),
    ]
    if images is not None:
        imgs = np.asarray(images)
        if imgs.shape[0] != t.shape[0]:
            raise ValueError(f"{imgs.shape[0]} images for {t.shape[0]} samples")
        figures.append(
            (
                "mistakes.png",
                plot_confident_mistakes(
                    imgs, t, y_pred, confidence, names, max_images=max_mistakes, title=f"{lead}Most confident mistakes"
                ),
            )
        )
    for name, fig in figures:
        files.append(save_figure(fig, path(name)))
    return {"metrics": metrics, "files": files}


def write_reliability_calibration(
    outputs: object,
    labels: object,
    temperature: float,
    out_path: str | Path,
    outputs_are_probs: bool = False,
    n_bins: int = 15,
    title: str | None = None,
) -> dict[str, float]:
    """The reliability diagram of one split's model ``outputs [N, C]`` (logits, or probabilities with
    ``outputs_are_probs``) before (``T = 1``) and after ``temperature``, written to ``out_path``.
    Returns the split's :func:`ferops.evaluation.calibration.calibration_scores` (NLL / ECE before and after)."""
    scores = calibration_scores(outputs, labels, temperature, outputs_are_probs, n_bins)
    y = np.asarray(labels)
    panels = [
        (f"{name} (T = {t:.3g})", reliability_bins(calibrated_probs(np.asarray(outputs), t, outputs_are_probs), y, n_bins))
        for name, t in (("before", 1.0), ("after", temperature))
    ]
    lead = f"{title}: " if title else ""
    save_figure(
        plot_reliability_comparison(panels, title=f"{lead}Reliability before / after temperature scaling"), Path(out_path)
    )
    return scores


def write_threshold_report(
    curve: Sequence[Mapping[str, object]],
    recommendation: Mapping[str, object],
    out_dir: str | Path,
    title: str | None = None,
) -> dict[str, object]:
    """The unknown-threshold files (module docstring) from a val ``curve`` and its ``recommendation``
    (``ferops.evaluation.threshold``; add ``recommendation["test"] = accepted_scores(...)`` first to
    report test). Returns ``{"recommendation", "files"}``."""
    if not curve:
        raise ValueError("empty threshold curve")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / "threshold_curve.csv"
    with csv_path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(curve[0].keys()))
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in curve)
    files = [csv_path, _write_json(out / "threshold_recommendation.json", dict(recommendation))]
    lead = f"{title}: " if title else ""
    files.append(
        save_figure(
            plot_threshold_analysis(curve, recommendation, title=f"{lead}Unknown threshold"), out / "threshold_analysis.png"
        )
    )
    return {"recommendation": dict(recommendation), "files": files}


def data_stats(split_labels: Mapping[str, object], class_names: Sequence[str]) -> dict[str, float]:
    """Flat counts: ``n_images/<split>`` and ``count/<split>/<class>`` (floats, as metrics)."""
    n = len(class_names)
    out: dict[str, float] = {}
    for split, labels in split_labels.items():
        counts = np.bincount(np.asarray(labels).astype(np.int64).ravel(), minlength=n)
        if counts.shape[0] > n:
            raise ValueError(f"split {split!r} has labels outside [0, {n})")
        out[f"n_images/{split}"] = float(counts.sum())
        for name, c in zip(class_names, counts, strict=True):
            out[metric_key(f"count/{split}", name)] = float(c)
    return out


def write_data_report(
    splits: Mapping[str, tuple[object | None, object]],
    class_names: Sequence[str],
    out_dir: str | Path,
    stats: Mapping[str, object] | None = None,
    prefix: str = "",
    sample_split: str | None = None,
    n_per_class: int = 8,
    seed: int = 0,
    title: str | None = None,
) -> dict[str, object]:
    """Figures and counts for a ``prepare`` stage.

    ``splits`` maps split name -> ``(images uint8 [N, 48, 48] or None, labels [N])``.
    Writes ``class_distribution.png``, ``samples.png`` (faces from ``sample_split``;
    default "train" if present, else the first split with images) and
    ``data_stats.json``: the :func:`data_stats` counts updated with ``stats`` (anything
    JSON-serialisable the stage wants to record, e.g. dropped rows, fingerprint).

    Returns ``{"stats": the dict written, "files": [Path, ...]}``.
    """
    if not splits:
        raise ValueError("no splits given")
    names = [str(c) for c in class_names]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lead = f"{title}: " if title else ""
    labels = {s: np.asarray(lab) for s, (_, lab) in splits.items()}
    for s, (imgs, lab) in splits.items():
        if imgs is not None and np.asarray(imgs).shape[0] != np.asarray(lab).shape[0]:
            raise ValueError(f"split {s!r}: {np.asarray(imgs).shape[0]} images but {np.asarray(lab).shape[0]} labels")

    merged: dict[str, object] = dict(data_stats(labels, names))
    merged.update(stats or {})
    files = [_write_json(out / f"{prefix}data_stats.json", merged)]
    files.append(
        save_figure(
            plot_class_distribution(labels, names, title=f"{lead}Class distribution"),
            out / f"{prefix}class_distribution.png",
        )
    )

    with_images = [s for s, (imgs, _) in splits.items() if imgs is not None]
    if sample_split is None:
        sample_split = "train" if "train" in with_images else (with_images[0] if with_images else None)
    if sample_split is not None:
        if sample_split not in with_images:
            raise ValueError(f"sample_split {sample_split!r} has no images; splits with images: {with_images}")
        imgs, lab = splits[sample_split]
        fig = plot_sample_grid(
            imgs, lab, names, n_per_class=n_per_class, seed=seed, title=f"{lead}Samples per class ({sample_split} split)"
        )
        files.append(save_figure(fig, out / f"{prefix}samples.png"))
    return {"stats": merged, "files": files}
