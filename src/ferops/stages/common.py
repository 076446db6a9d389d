"""What every stage shares: the parameters file, fixed paths, the pipeline's MLflow run."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
from omegaconf import DictConfig, OmegaConf

from ferops import tracking

PARAMS = Path("params.yaml")
PREPARED_DIR = Path("data/prepared")
REPORTS = Path("reports")
TRAIN_DIR = Path("outputs/train")
CHECKPOINT = TRAIN_DIR / "checkpoints" / "best.ckpt"
EXPORT_DIR = Path("outputs/export")
EXPORT_METRICS = REPORTS / "export" / "metrics.json"


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] %(message)s")


def load_params(path: Path = PARAMS) -> DictConfig:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; compose it with `make params` (or run `dvc exp run`)")
    return OmegaConf.load(path)


def dvc_tags() -> dict[str, str]:
    """DVC sets these in the environment of `dvc exp run` stages; a plain `dvc repro` is 'workspace'."""
    return {
        "dvc.exp_name": os.environ.get("DVC_EXP_NAME", "workspace"),
        "dvc.baseline_rev": os.environ.get("DVC_EXP_BASELINE_REV", "none"),
    }


@contextmanager
def pipeline_run(cfg: DictConfig) -> Iterator[mlflow.ActiveRun]:
    """Resume the MLflow run the train stage created for this pipeline execution."""
    with tracking.start_run(cfg.tracking.experiment, run_id=tracking.read_run_id()) as run:
        yield run


def write_json(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path
