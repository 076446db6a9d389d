"""Store URIs, the one client factory, run lifecycle and parameter logging.

MLflow >= 3.13 refuses the plain `./mlruns` file store, so the default is a SQLite database
inside mlruns/ with artifacts beside it. `MLFLOW_TRACKING_URI` overrides it (a tracking server,
PostgreSQL, a test's temporary store).
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow

DEFAULT_STORE_DIR = "mlruns"
# A pipeline execution is one MLflow run: train creates it, later stages resume it through this file.
RUN_ID_FILE = "outputs/run_id.txt"


def store_dir() -> Path:
    return Path(os.environ.get("FEROPS_MLRUNS_DIR", DEFAULT_STORE_DIR)).resolve()


def tracking_uri() -> str:
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{store_dir() / 'mlflow.db'}"


def _default_artifact_location(experiment_name: str) -> str | None:
    """A SQLite store keeps its artifacts beside the database (<db dir>/artifacts/<experiment>);
    MLflow's own default would be ./mlruns under whatever the working directory is.
    A server or another store decides for itself."""
    uri = tracking_uri()
    if not uri.startswith("sqlite:///"):
        return None
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in experiment_name)
    return (Path(uri.removeprefix("sqlite:///")).parent / "artifacts" / safe).resolve().as_uri()


def client(uri: str | None = None, set_default: bool = False) -> mlflow.MlflowClient:
    """A client for runs and the model registry on `uri` (default: the project's store).

    A SQLite store's directory is created first (SQLite creates the file, not its directory).
    set_default: also point the fluent API (`mlflow.log_*`, `mlflow.start_run`) at that store."""
    uri = uri or tracking_uri()
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    if set_default:
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def ensure_experiment(name: str) -> str:
    """Point mlflow at our store and return the id of experiment `name`, creating it if needed."""
    uri = tracking_uri()
    store = client(uri)
    mlflow.set_tracking_uri(uri)
    exp = store.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    try:
        return store.create_experiment(name, artifact_location=_default_artifact_location(name))
    except mlflow.exceptions.MlflowException:
        # Another process (a parallel sweep job) created it first.
        exp = store.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def new_run_name(*parts: str) -> str:
    """Readable and unique: the parts, a timestamp and a short random suffix.
    uuid4 reads os.urandom, so seeding torch/numpy/random cannot make two names collide."""
    stamp = time.strftime("%m%d-%H%M%S")
    return "-".join([p for p in parts if p] + [stamp, uuid.uuid4().hex[:4]])


@contextmanager
def start_run(
    experiment: str,
    run_name: str | None = None,
    run_id: str | None = None,
    tags: Mapping[str, str] | None = None,
    nested: bool = False,
    parent_run_id: str | None = None,
) -> Iterator[mlflow.ActiveRun]:
    """Start a new run or resume `run_id`. Ends the run FAILED if the block raises."""
    exp_id = ensure_experiment(experiment)
    kwargs: dict[str, Any] = {"run_id": run_id} if run_id else {"experiment_id": exp_id, "run_name": run_name}
    if parent_run_id:
        kwargs["parent_run_id"] = parent_run_id
    with mlflow.start_run(nested=nested, tags=dict(tags or {}), **kwargs) as run:
        yield run


def write_run_id(run_id: str, path: str | Path = RUN_ID_FILE) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(run_id + "\n")


def read_run_id(path: str | Path = RUN_ID_FILE) -> str:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no pipeline run id; run the train stage first (dvc repro)")
    return path.read_text().strip()


# What MLflow accepts in a param/metric key on every OS (it allows ':' too, except on Windows).
_BAD_KEY_CHARS = re.compile(r"[^/\w.\- ]")
MAX_KEY_LENGTH = 250
MAX_PARAM_VALUE_LENGTH = 6000
MAX_PARAMS_PER_BATCH = 100


def mlflow_key(key: str) -> str:
    """A param/metric key MLflow accepts (`+trainer.x` -> `_trainer.x`), at most 250 characters."""
    return _BAD_KEY_CHARS.sub("_", key)[:MAX_KEY_LENGTH]


def flatten_params(cfg: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config -> {'a.b.c': 'value'}; lists become their string form. Keys go through
    `mlflow_key` (a no-op for the project config, whose keys are identifiers; Hydra override
    keys like `+trainer.x` need it), values are cut to MLflow's 6000-character limit."""
    out: dict[str, str] = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten_params(value, prefix=f"{name}."))
        else:
            out[mlflow_key(name)] = str(value)[:MAX_PARAM_VALUE_LENGTH]
    return out


def log_params_flat(cfg: Mapping[str, Any], run_id: str | None = None, uri: str | None = None) -> None:
    """Flatten `cfg` and log it in batches of MLflow's size limit: to the active run, or to
    `run_id` in store `uri` (default: the project's store)."""
    items = sorted(flatten_params(cfg).items())
    batches = [dict(items[i : i + MAX_PARAMS_PER_BATCH]) for i in range(0, len(items), MAX_PARAMS_PER_BATCH)]
    if run_id is None:
        for batch in batches:
            mlflow.log_params(batch)
        return
    from mlflow.entities import Param

    store = client(uri)
    for batch in batches:
        store.log_batch(run_id, params=[Param(k, v) for k, v in batch.items()])


def child_runs(parent_run_id: str, uri: str | None = None) -> list:
    """All runs whose `mlflow.parentRunId` is the parent (paged; any lifecycle but deleted).
    LookupError when the parent is not in the store."""
    store = client(uri)
    try:
        parent = store.get_run(parent_run_id)
    except mlflow.exceptions.MlflowException as err:
        raise LookupError(f"no run {parent_run_id!r} in {store.tracking_uri}: {err.message}") from err
    runs, token = [], None
    while True:
        page = store.search_runs(
            [parent.info.experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'",
            max_results=1000,
            page_token=token,
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs
