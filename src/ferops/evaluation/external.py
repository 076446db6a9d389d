"""Evaluate a checkpoint on any FER-format CSV or image folder: the tool for external test sets
(e.g. the withheld FER2013 PrivateTest)."""

from __future__ import annotations

from pathlib import Path

from hydra.utils import instantiate

from ferops.data import ClassMap, Fer2013Csv, ImageFolder
from ferops.data.constants import usage_of
from ferops.evaluation.predict import predict_probs
from ferops.evaluation.report import write_evaluation_report
from ferops.models.checkpoint import load_deployable


def load_external(path: str | Path, class_map: ClassMap, usage: str | None = None, on_bad_rows: str = "error"):
    """(images, labels) of a CSV file or an image folder, mapped to the model's classes.
    `usage` keeps only rows of one split (train / val / test; FER2013 Training / PublicTest / PrivateTest)."""
    path = Path(path)
    source = ImageFolder(path, on_bad_rows=on_bad_rows) if path.is_dir() else Fer2013Csv(path, on_bad_rows=on_bad_rows)
    raw = class_map.apply(source.load())
    if usage:
        wanted = usage_of(usage) or usage
        keep = raw.usage == wanted
        if not keep.any():
            raise ValueError(f"{path}: no rows with usage {usage!r} (found {sorted(set(raw.usage.tolist()))})")
        raw = raw.subset(keep.nonzero()[0])
    return raw.images, raw.labels


def evaluate_checkpoint(
    checkpoint: str | Path, data: str | Path, out_dir: str | Path, usage: str | None = None, on_bad_rows: str = "error"
) -> dict:
    model, meta = load_deployable(checkpoint)
    class_map = instantiate(meta["config"]["data"]["class_map"])
    if list(class_map.names) != list(meta["class_names"]):
        raise ValueError(f"{checkpoint}: class map {class_map.names} does not match the model's classes {meta['class_names']}")
    images, labels = load_external(data, class_map, usage, on_bad_rows)
    probs = predict_probs(model, images)
    return write_evaluation_report(probs, labels, images, meta["class_names"], out_dir)
