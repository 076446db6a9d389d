"""MLflow: where the store is, how runs are named, started, resumed and tagged."""

from ferops.tracking.lineage import config_hash, data_tags, git_tags
from ferops.tracking.store import (
    RUN_ID_FILE,
    ensure_experiment,
    flatten_params,
    log_params_flat,
    new_run_name,
    read_run_id,
    start_run,
    tracking_uri,
    write_run_id,
)

__all__ = [
    "RUN_ID_FILE",
    "config_hash",
    "data_tags",
    "ensure_experiment",
    "flatten_params",
    "git_tags",
    "log_params_flat",
    "new_run_name",
    "read_run_id",
    "start_run",
    "tracking_uri",
    "write_run_id",
]
