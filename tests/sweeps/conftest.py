"""Helpers for the sweep tests: run `python -m ferops.train` in a subprocess on the smoke preset
with tiny limits, against a temporary store, and read the runs back with MlflowClient."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from confutil import CONF_DIR
from ferops.sweeps import PARENT_RUN_ENV

REPO = Path(__file__).resolve().parents[2]
EXPERIMENT = "ferops-sweep-test"
# The smoke preset cut to one epoch of two batches, one val and one test batch.
SMOKE = [
    "experiment=smoke",
    "trainer.max_epochs=1",
    "++trainer.limit_train_batches=2",
    "++trainer.limit_val_batches=1",
    "++trainer.limit_test_batches=1",
    "data.source.n_per_class=20",
    "data.batch_size=16",
    f"tracking.experiment={EXPERIMENT}",
]


def sweep_wiring_overrides() -> list[str]:
    """What the project config still lacks for nested sweeps (empty once config.yaml enables the
    callback and conf/tracking/mlflow.yaml reads the parent id; test_config_enables_sweep_callback
    fails until then, so the subprocess tests can exercise the sweep code meanwhile)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="config", return_hydra_config=True)
    missing = []
    if "mlflow_sweep" not in (cfg.hydra.callbacks or {}):
        missing.append("hydra/callbacks=mlflow_sweep")
    raw = OmegaConf.to_container(cfg.tracking, resolve=False).get("parent_run_id")
    if PARENT_RUN_ENV not in str(raw):
        missing.append(f"tracking.parent_run_id=${{oc.env:{PARENT_RUN_ENV},null}}")
    return missing


@dataclass
class Completed:
    returncode: int
    output: str
    uri: str


def _run_train(
    args: list[str], tmp_path: Path, uri: str | None = None, timeout: float = 300, env: dict | None = None
) -> Completed:
    """`python -m ferops.train ARGS` from tmp_path (outputs, caches and the store stay there)."""
    uri = uri or f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    (tmp_path / "mlruns").mkdir(exist_ok=True)
    full_env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": uri,
        "OMP_NUM_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        **(env or {}),
    }
    full_env.pop(PARENT_RUN_ENV, None)
    full_env.pop("PYTEST_CURRENT_TEST", None)  # MLflow's read-only-session checks are for its own tests
    cmd = [sys.executable, "-m", "ferops.train", *args, f"data.cache_dir={tmp_path / 'cache'}"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=full_env, capture_output=True, text=True, timeout=timeout)
    return Completed(proc.returncode, proc.stdout + proc.stderr, uri)


def _experiment_runs(uri: str, experiment: str = EXPERIMENT) -> list:
    import mlflow

    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no experiment {experiment!r} in {uri}"
    return client.search_runs([exp.experiment_id], max_results=1000)


@pytest.fixture
def sweep_wiring():
    """The overrides the project config still lacks for nested sweeps ([] once wired)."""
    return sweep_wiring_overrides()


@pytest.fixture
def sweep_args():
    """Overrides for a tiny multirun on the smoke preset (plus whatever wiring the config still lacks)."""
    return [*SMOKE, *sweep_wiring_overrides()]


@pytest.fixture
def smoke_args():
    """Overrides for one tiny training on the smoke preset."""
    return list(SMOKE)


@pytest.fixture
def run_train():
    """run_train(args, tmp_path, uri=None, timeout=300, env=None) -> Completed(returncode, output, uri)."""
    return _run_train


@pytest.fixture
def experiment_runs():
    """experiment_runs(uri, experiment="ferops-sweep-test") -> every run of that experiment."""
    return _experiment_runs
