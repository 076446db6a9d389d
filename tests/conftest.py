"""Shared fixtures: composed configs on tiny settings and a temporary MLflow store."""

from __future__ import annotations

import os

import pytest
import torch

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
