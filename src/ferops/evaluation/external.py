"""Evaluate any deployable model on any FER-format CSV or image folder: the tool for external test
sets (e.g. the withheld FER2013 PrivateTest).

The model is a Lightning checkpoint (``.ckpt``), a deployment bundle directory (the int8 model as
the torch-free runtime runs it, temperature included), an MLflow pyfunc model directory, or a
``models:/NAME@ALIAS`` / ``models:/NAME/VERSION`` / ``runs:/`` URI of one (downloaded, then read as
a bundle). Whatever it is, it is treated as untrusted: checkpoints load through
:func:`ferops.models.checkpoint.load_deployable`, and class maps are rebuilt from their names
(:meth:`ferops.data.ClassMap.from_config`), never instantiated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ferops.data import ClassMap, Fer2013Csv, ImageFolder
from ferops.data.constants import usage_of
from ferops.evaluation.report import write_evaluation_report

MODEL_URI_SCHEMES = ("models:/", "runs:/")


@dataclass(frozen=True)
class ScoredModel:
    """What evaluation needs of a model: its classes, how FER labels map onto them, and
    ``probabilities(images) -> (probs, probs_before)`` (``probs_before``: the same rows at T = 1 when
    the model applies a temperature, else None)."""

    kind: str  # "checkpoint" or "bundle"
    location: str
    class_names: list[str]
    class_map: ClassMap
    probabilities: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]]
    tta: str = "none"  # the views a bundle averages (ferops.runtime.bundle.TTA_VIEWS)
    torch_model: Any = None  # a checkpoint's torch module (what Grad-CAM needs); None for a bundle


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


def open_model(ref: str | Path) -> ScoredModel:
    """A checkpoint file, a bundle directory, a pyfunc model directory or a model URI (module docstring)."""
    text = str(ref)
    if text.startswith(MODEL_URI_SCHEMES):
        import mlflow

        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=text))
        return _open_bundle(bundle_in_pyfunc(local), text)
    path = Path(ref)
    if path.is_dir():
        return _open_bundle(bundle_in_pyfunc(path) if (path / "MLmodel").is_file() else path, text)
    if path.is_file():
        return _open_checkpoint(path)
    raise FileNotFoundError(
        f"{ref}: not found (expected a .ckpt file, a bundle directory, an MLflow model directory or a models:/ URI)"
    )


def bundle_in_pyfunc(model_dir: Path) -> Path:
    """The bundle directory inside a logged ferops pyfunc model (its MLmodel's ``bundle`` artifact)."""
    import yaml

    from ferops.runtime.bundle import BUNDLE_ARTIFACT

    mlmodel = model_dir / "MLmodel"
    try:
        spec = yaml.safe_load(mlmodel.read_text(encoding="utf-8")) or {}
        rel = spec["flavors"]["python_function"]["artifacts"][BUNDLE_ARTIFACT]["path"]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as err:
        raise ValueError(f"{mlmodel}: not a ferops pyfunc model (no python_function '{BUNDLE_ARTIFACT}' artifact)") from err
    root = model_dir.resolve()
    bundle = (root / str(rel)).resolve()
    if not bundle.is_relative_to(root):  # a hand-made MLmodel must not point outside the model
        raise ValueError(f"{mlmodel}: the {BUNDLE_ARTIFACT!r} artifact path {rel!r} leaves the model directory")
    return bundle


def _open_checkpoint(path: Path) -> ScoredModel:
    from ferops.evaluation.predict import predict_probs
    from ferops.models.checkpoint import load_deployable

    model, meta = load_deployable(path)
    class_map = ClassMap.from_config(meta["config"]["data"]["class_map"], f"{path}: config.data.class_map")
    names = [str(c) for c in meta["class_names"]]
    if class_map.names != names:
        raise ValueError(f"{path}: class map {class_map.names} does not match the model's classes {names}")
    return ScoredModel(
        "checkpoint", str(path), names, class_map, lambda images: (predict_probs(model, images), None), torch_model=model
    )


def _open_bundle(bundle_dir: Path, location: str) -> ScoredModel:
    from ferops.runtime.bundle import BundleModel, calibrated_probs

    bundle = BundleModel(bundle_dir)
    recorded = bundle.metadata.get("class_map")
    where = f"{bundle_dir / 'model_metadata.json'}: class_map"
    try:  # bundles written before the class map was recorded: the class names must be FER-7 names
        class_map = ClassMap.from_config(recorded, where) if recorded is not None else ClassMap(bundle.class_names)
    except ValueError as err:
        raise ValueError(f"{bundle_dir}: cannot map FER labels onto the bundle's classes {bundle.class_names}: {err}") from err
    if class_map.names != bundle.class_names:
        raise ValueError(f"{where} names {class_map.names} do not match the bundle's classes {bundle.class_names}")

    def probabilities(images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        outputs = bundle.predict_outputs(np.asarray(images))  # as deployed (TTA); both reliability views from it
        probs = calibrated_probs(outputs, bundle.temperature, bundle.softmax_in_model)
        before = None if bundle.temperature == 1.0 else calibrated_probs(outputs, 1.0, bundle.softmax_in_model)
        return probs, before

    return ScoredModel("bundle", location, list(bundle.class_names), class_map, probabilities, tta=bundle.tta)


def evaluate_model(
    model: str | Path, data: str | Path, out_dir: str | Path, usage: str | None = None, on_bad_rows: str = "error"
) -> dict:
    """The evaluate stage's report (:func:`ferops.evaluation.report.write_evaluation_report`) of
    ``model`` (:func:`open_model`) on ``data``; returns it with ``"model"`` (kind and location) added."""
    scored = open_model(model)
    images, labels = load_external(data, scored.class_map, usage, on_bad_rows)
    probs, before = scored.probabilities(images)
    title = f"{scored.kind} {Path(scored.location).name if scored.kind == 'checkpoint' else scored.location}"
    title += f", TTA {scored.tta}" if scored.tta != "none" else ""
    result = write_evaluation_report(
        probs, labels, images, scored.class_names, out_dir, title=title, probs_before=before, before_label="T = 1"
    )
    return {**result, "model": {"kind": scored.kind, "location": scored.location, "tta": scored.tta}}
