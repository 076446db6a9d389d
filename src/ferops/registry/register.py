"""Log the deployable bundle as a pyfunc into the pipeline's run and register it as a new version.

The new version carries its lineage, the training run's split record (`split.*`) and its deployable
metrics on val as tags (see `ferops.registry.tags`), optionally its int8 val predictions (a run
artifact, for the paired bootstrap), and gets the alias `challenger`; `ferops.registry.promote`
decides whether it becomes `champion`. Creating the registered model, creating the version and
moving `challenger` run under the registry lock (`ferops.registry.lock`), so concurrent
registrations neither fail nor leave `challenger` on an older version.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from ferops import tracking
from ferops.registry import tags as T
from ferops.registry.evidence import sha256_file
from ferops.registry.lock import registry_lock
from ferops.registry.pyfunc import log_pyfunc

log = logging.getLogger(__name__)

CHALLENGER = "challenger"
CHAMPION = "champion"
PREVIOUS_CHAMPION = "previous-champion"
MODEL_NAME_IN_RUN = "model"
PREDICTIONS_ARTIFACT_DIR = "registry/predictions"
_DVC_TEMP_WORKSPACE = (".dvc", "tmp", "exps")


class StoreLocationError(RuntimeError):
    pass


def check_store_location(uri: str, cwd: str | Path | None = None) -> None:
    """A queued DVC experiment (`dvc queue start`) runs in a temporary copy of the repository under
    .dvc/tmp/exps/, which DVC deletes afterwards: a SQLite store inside it would register the model
    into a throwaway database. Stop with what to set instead."""
    cwd = Path(cwd or os.getcwd()).resolve()
    parts = cwd.parts
    in_temp = any(parts[i : i + 3] == _DVC_TEMP_WORKSPACE for i in range(len(parts)))
    if not in_temp or not uri.startswith("sqlite:///"):
        return
    db = Path(uri.removeprefix("sqlite:///"))
    db = (cwd / db).resolve() if not db.is_absolute() else db.resolve()
    if db.is_relative_to(cwd):
        raise StoreLocationError(
            f"the MLflow store {db} lies inside DVC's temporary workspace {cwd}, which `dvc queue` deletes: "
            f"export an absolute MLFLOW_TRACKING_URI before `dvc queue start`, e.g. "
            f"MLFLOW_TRACKING_URI=sqlite:////path/to/repo/mlruns/mlflow.db (four slashes), or a tracking server "
            f"URL (http://127.0.0.1:5000); the queue workers inherit it"
        )


def registry_client() -> MlflowClient:
    """`ferops.tracking.client` on the project's store, also the fluent API's, once the store is
    known not to vanish with a DVC queue workspace."""
    check_store_location(tracking.tracking_uri())
    return tracking.client(set_default=True)


def client_uri(client: MlflowClient) -> str:
    """The registry URI a client talks to (the lock is per store)."""
    for attr in ("_registry_uri", "_tracking_client"):
        value = getattr(client, attr, None)
        uri = value if isinstance(value, str) else getattr(value, "tracking_uri", None)
        if uri:
            return str(uri)
    return tracking.tracking_uri()


def ensure_registered_model(client: MlflowClient, name: str) -> None:
    """Create `name` unless it exists; losing the race to another process's create is fine."""
    try:
        client.get_registered_model(name)
        return
    except MlflowException:
        pass
    try:
        client.create_registered_model(name, description="Facial-expression classifier, full-int8 TFLite bundle (pyfunc).")
    except MlflowException as err:
        if getattr(err, "error_code", "") != "RESOURCE_ALREADY_EXISTS" and "already exists" not in str(err).lower():
            raise


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
    predictions: str | Path | None = None,
) -> str:
    """Log the bundle's pyfunc into run `run_id` and register it under `name`; returns the new version.

    metrics: the export stage's metrics.json (mapped to version tags by `tags.export_tags`; the
        export stage itself logs them to the run);
    extra_artifacts: e.g. {"onnx": ".../model.onnx", "checkpoint": ".../best.ckpt"} (missing ones skipped);
    tags: extra version tags, overriding the derived ones;
    predictions: the export's eval_predictions.npz (int8 predictions on the val rows, with row ids),
        logged into the run under registry/predictions/<sha256>.npz and named by the version tags
        `eval.predictions_uri` / `eval.predictions_sha256` (promotion's paired bootstrap reads it).
    """
    client = registry_client()
    run = client.get_run(run_id)
    experiment = client.get_experiment(run.info.experiment_id).name
    vtags = version_tags(run, metrics, tags)
    with tracking.start_run(experiment, run_id=run_id):
        info = log_pyfunc(bundle_dir, name=MODEL_NAME_IN_RUN, extra_artifacts=extra_artifacts)
        if predictions is not None and Path(predictions).is_file():
            digest = sha256_file(predictions)
            with tempfile.TemporaryDirectory() as tmp:
                named = Path(tmp) / f"{digest[:16]}.npz"
                shutil.copy(predictions, named)
                mlflow.log_artifact(str(named), artifact_path=PREDICTIONS_ARTIFACT_DIR)
            vtags[T.PREDICTIONS_URI] = f"runs:/{run_id}/{PREDICTIONS_ARTIFACT_DIR}/{named.name}"
            vtags[T.PREDICTIONS_SHA256] = digest
        elif predictions is not None:
            log.warning("%s: no val predictions; promotion will compare this version on its tags only", predictions)
        # check-then-act (create the model) and create-then-alias (challenger = newest) under the lock
        with registry_lock(client_uri(client), f"register {name}"):
            ensure_registered_model(client, name)
            mv = client.create_model_version(
                name,
                source=info.model_uri,
                run_id=run_id,
                tags=vtags,
                model_id=info.model_id,
                description=f"run {vtags.get(T.RUN_NAME, run_id)}; {T.INT8_MACRO_F1}={vtags.get(T.INT8_MACRO_F1, 'n/a')} (val)",
            )
            client.set_registered_model_alias(name, CHALLENGER, mv.version)
        mlflow.set_tags({"registry.model": name, "registry.version": mv.version})
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
    predictions: str | Path | None = None,
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
    if metrics and metrics.get("eval_split", "val") != "val":
        raise ValueError(f"{metrics_path}: export metrics are on {metrics.get('eval_split')!r}; the registry decides on val only")
    if metrics and "eval_split" not in metrics:
        log.warning(
            "%s: no eval_split recorded (an export from before the val/test rule); its numbers may be on test", metrics_path
        )
    return register_model(run_id, bundle_dir, name, metrics=metrics, extra_artifacts=extra, predictions=predictions)
