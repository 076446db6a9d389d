"""MLflow: where the store is, the one client factory, how runs are named, started, resumed and
tagged, parameter logging. `ferops.tracking.server` starts and stops MLflow server processes."""

from ferops.tracking.datasets import log_split_inputs, raw_source, split_inputs
from ferops.tracking.environment import environment_tags
from ferops.tracking.lineage import config_hash, data_tags, dvc_lock_tags, git_tags
from ferops.tracking.store import (
    RUN_ID_FILE,
    child_runs,
    client,
    ensure_experiment,
    flatten_params,
    log_params_flat,
    mlflow_key,
    new_run_name,
    read_run_id,
    start_run,
    tracking_uri,
    write_run_id,
)

__all__ = [
    "RUN_ID_FILE",
    "child_runs",
    "client",
    "config_hash",
    "data_tags",
    "dvc_lock_tags",
    "ensure_experiment",
    "environment_tags",
    "flatten_params",
    "git_tags",
    "log_params_flat",
    "log_split_inputs",
    "mlflow_key",
    "new_run_name",
    "raw_source",
    "read_run_id",
    "split_inputs",
    "start_run",
    "tracking_uri",
    "write_run_id",
]
