"""Checkpoints for tests (importable: tests/ is on pythonpath): a real one trained by the training
code in seconds, and the pickle payload a malicious one carries."""

from __future__ import annotations

from pathlib import Path

import mlflow

from confutil import TINY, compose_config


def train_tiny_checkpoint(tmp: Path, overrides: list[str], base: list[str] | None = None) -> Path:
    """The best checkpoint of ``base`` (default: ``experiment=smoke`` on `TINY` settings) plus
    ``overrides``, tracked in a throwaway store under ``tmp`` (the global tracking URI is put back
    afterwards)."""
    from ferops.training.run import train

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp / 'mlflow.db'}")
    try:
        base = ["experiment=smoke", *TINY] if base is None else base
        result = train(compose_config([*base, *overrides]), tmp / "out")
    finally:
        while mlflow.active_run():
            mlflow.end_run()
        mlflow.set_tracking_uri(previous)
    return result.best_checkpoint


class Payload:
    """Unpickling this calls exec(code): what a malicious checkpoint carries."""

    def __init__(self, code: str):
        self.code = code

    def __reduce__(self):
        return (exec, (self.code,))
