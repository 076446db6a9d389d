"""Registry fixtures: a real int8 bundle (built once, in a subprocess), face images, a throwaway
MLflow store (SQLite + artifacts under tmp_path, cwd moved there), pipeline-like runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def bundle_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bundle")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(
        [sys.executable, str(HERE / "make_bundle.py"), str(root / "bundle")],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    # Stand-ins for the export's other outputs, attached as extra artifacts.
    (root / "model.onnx").write_bytes(b"onnx placeholder")
    (root / "best.ckpt").write_bytes(b"ckpt placeholder")
    return root


@pytest.fixture(scope="session")
def bundle_dir(bundle_root) -> Path:
    return bundle_root / "bundle"


@pytest.fixture(scope="session")
def face_images(bundle_root) -> np.ndarray:
    return np.load(bundle_root / "images.npy")


@pytest.fixture(scope="session")
def empty_store_db(tmp_path_factory) -> Path:
    """An SQLite file with MLflow's schema, created once (migrations take seconds) and copied per test."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("store-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def store(tmp_path, monkeypatch, empty_store_db) -> str:
    """A temporary SQLite store; cwd is tmp_path so default artifact roots land there too."""
    import mlflow

    monkeypatch.chdir(tmp_path)
    (tmp_path / "mlruns").mkdir()
    shutil.copy(empty_store_db, tmp_path / "mlruns" / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    yield uri
    while mlflow.active_run():
        mlflow.end_run()


def _make_run(
    experiment: str = "ferops-test",
    fingerprint: str = "fp-a",
    test_acc: float = 0.5,
    run_name: str | None = None,
    extra_metrics: dict | None = None,
) -> str:
    """A finished run shaped like the train stage's (lineage tags + test metrics)."""
    import mlflow

    from ferops import tracking

    with tracking.start_run(experiment, run_name=run_name or tracking.new_run_name("test")) as run:
        mlflow.set_tags(
            {
                "git.commit": "abc123",
                "git.dirty": "false",
                "data.name": "synthetic",
                "data.fingerprint": fingerprint,
                "config.hash": "cfg0001",
            }
        )
        metrics = {"val/macro_f1": test_acc - 0.01, "test/acc": test_acc, "test/macro_f1": test_acc - 0.02}
        mlflow.log_metrics({**metrics, **(extra_metrics or {})})
        return run.info.run_id


def _export_metrics(
    macro_f1: float, acc: float | None = None, gates: bool = True, edgetpu: bool = True, latency: float = 2.5
) -> dict:
    """An export-stage metrics.json (the shape ferops.export.run_export writes), abridged."""
    acc = acc if acc is not None else macro_f1 + 0.02
    return {
        "n_eval": 100,
        "pytorch": {"accuracy": acc + 0.005, "macro_f1": macro_f1 + 0.005, "latency_median_ms": 4.0},
        "tflite_int8": {
            "accuracy": acc,
            "macro_f1": macro_f1,
            "top1_agreement": 0.99,
            "accuracy_drop_points": 0.5,
            "latency_median_ms": latency,
            "latency_p95_ms": latency * 1.2,
            "size_bytes": 123456,
        },
        "edgetpu": {"compatible": edgetpu, "mapped_fraction": 1.0 if edgetpu else 0.5, "n_ops": 10, "n_mapped": 10},
        "gates_passed": gates,
    }


@pytest.fixture
def make_run(store):
    return _make_run


@pytest.fixture
def export_metrics():
    return _export_metrics
