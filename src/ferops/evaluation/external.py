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

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ferops.data import ClassMap, Fer2013Csv, ImageFolder
from ferops.data.class_map import recorded_class_map
from ferops.data.constants import usage_of
from ferops.evaluation.metrics import macro_f1
from ferops.evaluation.report import write_evaluation_report

log = logging.getLogger(__name__)

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


@dataclass(frozen=True)
class ExternalSet:
    """An external set's rows in the model's class ids, and how its classes met the model's.

    ``data_only``: the set's classes the model lacks -> images removed; ``model_only``: the model's
    classes the set lacks (every prediction of one is an error, counted apart by `class_set_report`)."""

    images: np.ndarray
    labels: np.ndarray
    data_classes: list[str]
    shared: list[str]
    data_only: dict[str, int]
    model_only: list[str]

    @property
    def images_dropped(self) -> int:
        return sum(self.data_only.values())


def parse_class_pairs(text: str | None) -> dict[str, str]:
    """``--class-map``: ``SRC=DST[,SRC=DST...]`` (a data class -> a model class), or a YAML / JSON file
    holding that mapping (or a class-map config with a ``mapping:``)."""
    if not text:
        return {}
    path = Path(text)
    if path.is_file():
        import yaml

        try:
            node = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as err:
            raise ValueError(f"{path}: cannot read the class map: {err}") from err
        node = node.get("mapping", node) if isinstance(node, dict) else node
        if not isinstance(node, dict) or not all(isinstance(v, str) for v in node.values()):
            raise ValueError(f"{path}: expected a mapping data class -> model class, got {node!r}")
        return {str(k): v for k, v in node.items()}
    pairs = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        src, sep, dst = item.partition("=")
        if not sep or not src.strip() or not dst.strip():
            raise ValueError(f"--class-map {text!r}: {item!r} is not SRC=DST (e.g. contempt=disgust,happiness=happy)")
        pairs[src.strip()] = dst.strip()
    return pairs


def load_external(
    path: str | Path,
    class_map: ClassMap,
    usage: str | None = None,
    on_bad_rows: str = "error",
    class_pairs: dict[str, str] | None = None,
) -> ExternalSet:
    """The rows of a CSV file or an image folder, mapped to the model's classes.

    `usage` keeps only rows of one split (train / val / test; FER2013 Training / PublicTest /
    PrivateTest). The data's classes go through the model's class map (``class_map``: what it
    was trained with, so FER-7 labels merge as in training) with ``class_pairs`` (data class ->
    model class, ``--class-map``) taking precedence; only the classes both sides share are scored."""
    path = Path(path)
    source = ImageFolder(path, on_bad_rows=on_bad_rows) if path.is_dir() else Fer2013Csv(path, on_bad_rows=on_bad_rows)
    raw = source.load()
    if usage:
        wanted = usage_of(usage) or usage
        keep = raw.usage == wanted
        if not keep.any():
            raise ValueError(f"{path}: no rows with usage {usage!r} (found {sorted(set(raw.usage.tolist()))})")
        raw = raw.subset(keep.nonzero()[0])
    if class_pairs:
        try:
            mapping = {**class_map.mapping, **class_pairs}
            class_map = ClassMap(class_map.names, mapping, class_map.name, class_map.aliases)
        except ValueError as err:
            raise ValueError(f"--class-map {class_pairs}: {err}") from err
    present = np.bincount(raw.labels, minlength=len(raw.class_names)) > 0
    data_classes = [c for c, n in zip(raw.class_names, present) if n]
    mapped = class_map.apply(raw.subset(np.isin(raw.labels, np.flatnonzero(present))), require_all=False)
    if not len(mapped):
        raise ValueError(
            f"{path}: none of its classes {data_classes} is a class of the model {class_map.names}; "
            "map them with --class-map SRC=DST"
        )
    missing = set(mapped.stats["class_map_missing"])
    return ExternalSet(
        images=mapped.images,
        labels=mapped.labels,
        data_classes=data_classes,
        shared=[c for c in class_map.names if c not in missing],
        data_only=dict(mapped.stats["class_map_dropped_classes"]),
        model_only=[c for c in class_map.names if c in missing],
    )


def class_set_report(data: ExternalSet, probs: np.ndarray, class_names: list[str]) -> dict[str, Any]:
    """Which classes were scored and what the others cost: macro-F1 over the shared classes, and the
    predictions of classes the set lacks (errors, counted here apart from the confusion among shared)."""
    y_pred = np.asarray(probs).argmax(axis=1)
    shared_ids = [class_names.index(c) for c in data.shared]
    absent = {c: int((y_pred == class_names.index(c)).sum()) for c in data.model_only}
    return {
        "model_classes": list(class_names),
        "data_classes": data.data_classes,
        "shared": data.shared,
        "data_only": data.data_only,
        "images_dropped": data.images_dropped,
        "model_only": data.model_only,
        "predicted_model_only": absent,
        "predicted_model_only_rate": sum(absent.values()) / max(len(y_pred), 1),
        "macro_f1_shared": macro_f1(data.labels, y_pred, len(class_names), labels=shared_ids),
    }


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
    names = [str(c) for c in meta["class_names"]]
    class_map = recorded_class_map(meta, str(path)) or ClassMap(names)
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
    model: str | Path,
    data: str | Path,
    out_dir: str | Path,
    usage: str | None = None,
    on_bad_rows: str = "error",
    class_map: str | dict[str, str] | None = None,
) -> dict:
    """The evaluate stage's report (:func:`ferops.evaluation.report.write_evaluation_report`) of
    ``model`` (:func:`open_model`) on ``data``; returns it with ``"model"`` (kind and location) and
    ``"class_sets"`` (:func:`class_set_report`, also written as ``class_sets.json``) added.
    ``class_map``: data class -> model class pairs (``--class-map``, :func:`parse_class_pairs`)."""
    scored = open_model(model)
    pairs = parse_class_pairs(class_map) if isinstance(class_map, str) or class_map is None else dict(class_map)
    external = load_external(data, scored.class_map, usage, on_bad_rows, pairs)
    probs, before = scored.probabilities(external.images)
    title = f"{scored.kind} {Path(scored.location).name if scored.kind == 'checkpoint' else scored.location}"
    title += f", TTA {scored.tta}" if scored.tta != "none" else ""
    result = write_evaluation_report(
        probs,
        external.labels,
        external.images,
        scored.class_names,
        out_dir,
        title=title,
        probs_before=before,
        before_label="T = 1",
    )
    class_sets = class_set_report(external, probs, scored.class_names)
    (Path(out_dir) / "class_sets.json").write_text(json.dumps(class_sets, indent=2) + "\n", encoding="utf-8")
    if external.model_only or external.data_only:
        log.warning(
            "%s: scored the shared classes %s; the data's %s dropped (%d images); the model's %s absent from the data",
            data,
            external.shared,
            sorted(external.data_only),
            external.images_dropped,
            external.model_only,
        )
    return {
        **result,
        "model": {"kind": scored.kind, "location": scored.location, "tta": scored.tta},
        "class_sets": class_sets,
    }
