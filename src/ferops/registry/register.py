"""Log the deployable bundle as a pyfunc into the pipeline's run and register it as a new version.

The new version carries its lineage and deployable metrics as tags (see `ferops.registry.tags`)
and gets the alias `challenger`; `ferops.registry.promote` decides whether it becomes `champion`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from ferops import tracking
from ferops.registry import tags as T
from ferops.registry.pyfunc import log_pyfunc

log = logging.getLogger(__name__)

CHALLENGER = "challenger"
CHAMPION = "champion"
PREVIOUS_CHAMPION = "previous-champion"
MODEL_NAME_IN_RUN = "model"


def registry_client() -> MlflowClient:
    """A client on the project's store (`ferops.tracking.tracking_uri`), used for runs and registry."""
    uri = tracking.tracking_uri()
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def version_tags(run, export_metrics: Mapping[str, Any] | None, extra: Mapping[str, Any] | None = None) -> dict[str, str]:
    tags = T.lineage_tags(run)
    if T.GIT_COMMIT not in tags:
        tags.update(tracking.git_tags())
    tags.update(T.export_tags(export_metrics or {}))
    tags.update({k: str(v) for k, v in (extra or {}).items()})
    return tags


def register_model(
    run_id: str,
    bundle_dir: str | Path,
    name: str,
    metrics: Mapping[str, Any] | None = None,
    extra_artifacts: Mapping[str, str | Path | None] | None = None,
    tags: Mapping[str, Any] | None = None,
) -> str:
    """Log the bundle's pyfunc into run `run_id` and register it under `name`; returns the new version.

    metrics: the export stage's metrics.json (mapped to version tags by `tags.export_tags`; the
        export stage itself logs them to the run);
    extra_artifacts: e.g. {"onnx": ".../model.onnx", "checkpoint": ".../best.ckpt"} (missing ones skipped);
    tags: extra version tags, overriding the derived ones.
    """
    client = registry_client()
    run = client.get_run(run_id)
    experiment = client.get_experiment(run.info.experiment_id).name
    vtags = version_tags(run, metrics, tags)
    with tracking.start_run(experiment, run_id=run_id):
        info = log_pyfunc(bundle_dir, name=MODEL_NAME_IN_RUN, extra_artifacts=extra_artifacts)
        try:
            client.get_registered_model(name)
        except MlflowException:
            client.create_registered_model(name, description="Facial-expression classifier, full-int8 TFLite bundle (pyfunc).")
        mv = client.create_model_version(
            name, source=info.model_uri, run_id=run_id, tags=vtags, model_id=info.model_id,
            description=f"run {vtags.get(T.RUN_NAME, run_id)}; {T.INT8_MACRO_F1}={vtags.get(T.INT8_MACRO_F1, 'n/a')}",
        )
        mlflow.set_tags({"registry.model": name, "registry.version": mv.version})
    client.set_registered_model_alias(name, CHALLENGER, mv.version)
    log.info("registered %s version %s (alias %s) from run %s", name, mv.version, CHALLENGER, run_id)
    return str(mv.version)


def aliases_of(name: str, version: str, client: MlflowClient | None = None) -> list[str]:
    """The aliases pointing at `version` (from the registered model: search results omit them)."""
    client = client or registry_client()
    return sorted(a for a, v in client.get_registered_model(name).aliases.items() if str(v) == str(version))


def register_pipeline_outputs(
    name: str,
    run_id_file: str | Path,
    export_metrics: str | Path,
    bundle_dir: str | Path,
    onnx: str | Path | None,
    checkpoint: str | Path | None,
) -> str:
    """The DVC register stage's work: the pipeline run, the export's outputs -> a new version
    (paths: `ferops.stages.register`'s flags, defaults in `ferops.stages.common`)."""
    run_id = tracking.read_run_id(run_id_file)
    metrics_path = Path(export_metrics)
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    if not metrics:
        log.warning("%s: no export metrics; the version gets no int8/EdgeTPU tags and cannot pass the gates", metrics_path)
    extra: dict[str, str | Path | None] = {"onnx": onnx, "checkpoint": checkpoint}
    for key, path in extra.items():
        if path is not None and not Path(path).exists():
            log.warning("%s artifact %s not found; registering without it", key, path)
    return register_model(run_id, bundle_dir, name, metrics=metrics, extra_artifacts=extra)
