"""`train(cfg)`: build data, model, loss and trainer from the composed config; fit; test the
best checkpoint; record everything in one MLflow run; return the metrics."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import mlflow
import numpy as np
import torch
from hydra.utils import instantiate
from lightning.pytorch.loggers import MLFlowLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf, open_dict

from ferops import tracking
from ferops.data.preprocess import Preprocess
from ferops.training.module import FERClassifier

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    metrics: dict[str, float]
    run_id: str
    best_checkpoint: Path
    output_dir: Path
    class_names: list[str] = field(default_factory=list)


def _loss_name(cfg: DictConfig) -> str:
    return str(cfg.loss.get("name") or cfg.loss._target_.rsplit(".", 1)[-1])


def build_module(cfg: DictConfig, datamodule) -> FERClassifier:
    """Model, loss and optimiser for the classes and preprocessing the datamodule reports."""
    class_names = list(datamodule.class_names)
    net = instantiate(cfg.model, num_classes=len(class_names))
    pre = datamodule.preprocessing
    preprocess = Preprocess(input_size=pre["input_size"], in_chans=pre["in_chans"], mean=pre["mean"], std=pre["std"])
    loss = instantiate(cfg.loss)
    loss.set_class_counts(datamodule.class_counts)
    meta = {
        "config": OmegaConf.to_container(cfg, resolve=True),
        "preprocessing": dict(pre),
        "model_name": cfg.model.name,
        "dataset_name": datamodule.dataset_name,
        "data_fingerprint": datamodule.fingerprint,
    }
    o = cfg.optim
    return FERClassifier(
        net=net,
        preprocess=preprocess,
        loss=loss,
        optimizer=instantiate(o.optimizer),
        class_names=class_names,
        warmup_epochs=o.warmup_epochs,
        min_lr_ratio=o.min_lr_ratio,
        backbone_lr_mult=o.backbone_lr_mult,
        ema_decay=o.ema_decay,
        mixup=OmegaConf.to_container(o.mixup, resolve=True),
        meta=meta,
    )


def _log_run_record(cfg: DictConfig, datamodule, output_dir: Path) -> None:
    """Resolved config as artifact + flattened params + lineage tags."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    config_path = output_dir / "config.yaml"
    config_path.write_text(OmegaConf.to_yaml(cfg, resolve=True))
    mlflow.log_artifact(str(config_path))
    tracking.log_params_flat(resolved)
    mlflow.set_tags(
        {
            **tracking.git_tags(),
            **tracking.data_tags(datamodule.dataset_name, datamodule.fingerprint, list(datamodule.class_names)),
            "config.hash": tracking.config_hash(resolved),
            "model": cfg.model.name,
            "loss": _loss_name(cfg),
            "preprocessing": str(dict(datamodule.preprocessing)),
        }
    )


def _log_test_report(module: FERClassifier, datamodule, run_id: str, output_dir: Path) -> None:
    """Confusion matrix, classification report and training curves of this run."""
    from ferops.evaluation.plots import plot_training_curves
    from ferops.evaluation.report import write_evaluation_report

    probs = torch.cat(module.test_probs).numpy()
    labels = torch.cat(module.test_labels).numpy()
    images, _ = datamodule.split_arrays("test")
    report_dir = output_dir / "test_report"
    write_evaluation_report(probs, labels, images, module.class_names, report_dir)
    mlflow.log_artifacts(str(report_dir), artifact_path="test_report")

    client = mlflow.MlflowClient()
    keys = [k for k in client.get_run(run_id).data.metrics if k.startswith(("train/", "val/")) and "/recall/" not in k]
    history = {k: [(m.step, m.value) for m in client.get_metric_history(run_id, k)] for k in keys}
    fig_path = output_dir / "training_curves.png"
    plot_training_curves(history, out_path=fig_path)
    mlflow.log_artifact(str(fig_path))


def _scalar_metrics(trainer: L.Trainer) -> dict[str, float]:
    return {k: float(v) for k, v in trainer.callback_metrics.items() if np.ndim(v) == 0}


def _callback(cfg: DictConfig, output_dir: Path):
    # Checkpoints go with the run's outputs; the path is not in the config because params.yaml
    # (the composed config) cannot know the Hydra run directory.
    if cfg._target_.endswith("ModelCheckpoint") and not cfg.get("dirpath"):
        return instantiate(cfg, dirpath=str(output_dir / "checkpoints"))
    return instantiate(cfg)


def train(cfg: DictConfig, output_dir: str | Path) -> TrainResult:
    output_dir = Path(output_dir).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)

    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    module = build_module(cfg, datamodule)

    t = cfg.tracking
    run_name = t.run_name or tracking.new_run_name(cfg.model.name, _loss_name(cfg), datamodule.dataset_name)
    # DDP runs train() once per rank (Lightning re-runs the command, SLURM/torchrun start one task
    # per device): rank 0 owns the MLflow run, the other ranks train without one.
    rank_zero = rank_zero_only.rank == 0
    run_context = (
        tracking.start_run(t.experiment, run_name=run_name, run_id=t.run_id, parent_run_id=t.parent_run_id, nested=bool(t.parent_run_id))
        if rank_zero
        else contextlib.nullcontext()
    )
    with run_context as run:
        run_id = run.info.run_id if rank_zero else ""
        if rank_zero:
            _log_run_record(cfg, datamodule, output_dir)
            mlflow.log_metric("model/num_params", sum(p.numel() for p in module.net.parameters()))
        logger = MLFlowLogger(experiment_name=t.experiment, tracking_uri=tracking.tracking_uri(), run_id=run_id or None)
        # A progress-bar callback and enable_progress_bar=false cannot be combined: the flag wins.
        show_bar = cfg.trainer.get("enable_progress_bar", True)
        callbacks = [
            _callback(c, output_dir)
            for c in cfg.callbacks.values()
            if c is not None and (show_bar or not str(c._target_).endswith("ProgressBar"))
        ]
        trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=logger, default_root_dir=str(output_dir))
        trainer.fit(module, datamodule=datamodule)
        # test() replaces callback_metrics: keep the fit's (val/macro_f1_best is what sweeps optimise).
        fit_metrics = _scalar_metrics(trainer)

        ckpt_cb = trainer.checkpoint_callback
        best = Path(ckpt_cb.best_model_path) if ckpt_cb and ckpt_cb.best_model_path else None
        trainer.test(module, datamodule=datamodule, ckpt_path=str(best) if best else None)
        metrics = {**fit_metrics, **_scalar_metrics(trainer)}

        if trainer.is_global_zero:
            _log_test_report(module, datamodule, run_id, output_dir)
            if best and t.log_checkpoint:
                mlflow.log_artifact(str(best), artifact_path="checkpoints")
        if best is None:
            best = output_dir / "checkpoints" / "last.ckpt"
            trainer.save_checkpoint(best)
    log.info("run %s (%s): %s", run_name, run_id, {k: round(v, 4) for k, v in metrics.items() if k.startswith("test/")})
    return TrainResult(metrics, run_id, best, output_dir, list(datamodule.class_names))


def main_metric(result: TrainResult, name: str) -> float | None:
    """The value the Hydra sweeper optimises."""
    value: Any = result.metrics.get(name)
    return None if value is None else float(value)
