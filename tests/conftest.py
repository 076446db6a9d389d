"""Shared fixtures: composed configs on tiny settings and a temporary MLflow store."""

from __future__ import annotations

import contextlib
import os

import pytest
import torch

# TensorFlow imported before triton segfaults the process (tensorflow 2.21 with torch 2.13's triton:
# `python -c "import tensorflow; import triton"` exits 139). torch._dynamo (through Lightning and
# torchvision) imports triton, so a test file that loads TensorFlow first and one that imports
# torchvision after it crash together; importing triton first keeps any test order safe.
with contextlib.suppress(ImportError):  # no triton wheel on this platform: nothing to order
    import triton  # noqa: F401

# Two cores: keep each test process to its share.
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch):
    """A throwaway SQLite MLflow store; returns its tracking URI."""
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    (tmp_path / "mlruns").mkdir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    import mlflow

    mlflow.set_tracking_uri(uri)
    yield uri
    if mlflow.active_run():
        mlflow.end_run()


@pytest.fixture(autouse=True)
def _restore_mlflow_uris():
    """``mlflow.set_tracking_uri`` / ``set_registry_uri`` are process-global and export
    ``MLFLOW_*_URI``: a test that points them at its temporary store must not leave later tests
    (and the subprocesses they start) on it. CI failed on exactly that once (a version "not found"
    in the pipeline test, looked up in the store of an earlier registry test)."""
    import mlflow.tracking._model_registry.utils as registry_utils
    import mlflow.tracking._tracking_service.utils as tracking_utils

    saved_env = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    saved_tracking, saved_registry = tracking_utils._tracking_uri, registry_utils._registry_uri
    yield
    tracking_utils.set_tracking_uri(saved_tracking)
    registry_utils.set_registry_uri(saved_registry)
    for key, value in saved_env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
