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
from hydra.utils import instantiate
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf, open_dict

from ferops import tracking
from ferops.models.preprocess import Preprocess
from ferops.training import qat
from ferops.training import resume as R
from ferops.training.distill import DistillConfig, load_teachers
from ferops.training.module import FERClassifier
from ferops.training.precision import training_precision

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
    """Model, loss and optimiser for the classes and preprocessing the datamodule reports.

    Every piece comes from its config group by ``_target_`` (model, loss, ``optim.optimizer`` as a
    partial; the scheduler is built in ``configure_optimizers`` once the step count is known). What
    stays hand-wired here is what only the data knows (class count and names, preprocessing, class
    counts for the loss weights): a ``module`` node of interpolations instead would copy every
    optim value a second time into the resolved params.yaml and the MLflow params."""
    class_names = list(datamodule.class_names)
    net = instantiate(cfg.model, num_classes=len(class_names))
    pre = datamodule.preprocessing
    preprocess = Preprocess.from_dict(pre)
    loss = instantiate(cfg.loss)
    loss.set_class_counts(datamodule.class_counts)
    meta = {
        "config": OmegaConf.to_container(cfg, resolve=True),
        "preprocessing": dict(pre),
        "model_name": cfg.model.name,
        "dataset_name": datamodule.dataset_name,
        "data_fingerprint": datamodule.fingerprint,
        "class_map": datamodule.class_map.to_config(),  # the applied one (data.classes=from_folders too)
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
        seed=cfg.get("seed"),
    )


def _resolved(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config without what may change when a run is resumed (not logged as params)."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    resolved.pop("resume", None)
    return resolved


def _resume_hash(cfg: DictConfig) -> str:
    resolved = _resolved(cfg)
    return tracking.config_hash({k: resolved.get(k) for k in R.TRAINING_KEYS})


def _log_run_record(cfg: DictConfig, datamodule, output_dir: Path) -> None:
    """Resolved config as artifact + flattened params + lineage tags + the split record."""
    resolved = _resolved(cfg)
    config_path = output_dir / "config.yaml"
    config_path.write_text(OmegaConf.to_yaml(cfg, resolve=True))
    mlflow.log_artifact(str(config_path))
    tracking.log_params_flat(resolved)
    mlflow.set_tags(
        {
            **{f"split.{k}": str(v) for k, v in datamodule.split_record.items()},
            **tracking.git_tags(),
            **tracking.dvc_lock_tags(),
            **tracking.environment_tags(cfg.trainer.get("accelerator")),
            **tracking.data_tags(datamodule.dataset_name, datamodule.fingerprint, list(datamodule.class_names)),
            "config.hash": tracking.config_hash(resolved),
            "model": cfg.model.name,
            "loss": _loss_name(cfg),
            "preprocessing": str(dict(datamodule.preprocessing)),
        }
    )
    # each split as an MLflow dataset input: the run page and search_runs show which rows it saw
    tracking.log_split_inputs(datamodule.split_record, datamodule.dataset_name, tracking.raw_source(datamodule.source))


def _log_test_report(
    scored: tuple[np.ndarray, np.ndarray, np.ndarray], module: FERClassifier, datamodule, run_id: str, output_dir: Path
) -> dict[str, float]:
    """Confusion matrix, classification report and training curves of this run.

    The report describes exactly the test rows the test loop scored (all of them, unless
    fast_dev_run / limit_test_batches cut the loop short: then it says so). Returns the
    coverage metrics (``test/n_scored``, ``test/coverage``)."""
    from ferops.evaluation.plots import plot_training_curves
    from ferops.evaluation.report import write_evaluation_report

    index, probs, labels = scored
    images, all_labels = datamodule.split_arrays("test")
    if not np.array_equal(all_labels[index], labels):
        raise RuntimeError("test report: the scored labels do not match the test split's rows")
    coverage = {"test/n_scored": float(len(index)), "test/coverage": float(len(index)) / max(1, len(all_labels))}
    title = None
    if len(index) < len(all_labels):
        title = f"partial test: {len(index)} of {len(all_labels)} images scored"
        log.warning("test report covers %d of %d test images (the test loop was limited)", len(index), len(all_labels))
    report_dir = output_dir / "test_report"
    write_evaluation_report(probs, labels, images[index], module.class_names, report_dir, title=title)
    (report_dir / "scored_rows.txt").write_text(
        f"# {len(index)} of {len(all_labels)} test rows scored (row ids of the test split)\n"
        + "\n".join(map(str, datamodule.split_ids("test")[index]))
        + "\n"
    )
    mlflow.log_artifacts(str(report_dir), artifact_path="test_report")

    client = tracking.client()
    keys = [k for k in client.get_run(run_id).data.metrics if k.startswith(("train/", "val/")) and "/recall/" not in k]
    history = {k: [(m.step, m.value) for m in client.get_metric_history(run_id, k)] for k in keys}
    fig_path = output_dir / "training_curves.png"
    plot_training_curves(history, out_path=fig_path)
    mlflow.log_artifact(str(fig_path))
    mlflow.log_metrics(coverage)
    return coverage


def _scalar_metrics(trainer: L.Trainer) -> dict[str, float]:
    return {k: float(v) for k, v in trainer.callback_metrics.items() if np.ndim(v) == 0}


def _callback(cfg: DictConfig, output_dir: Path):
    # Checkpoints go with the run's outputs; the path is not in the config because params.yaml
    # (the composed config) cannot know the Hydra run directory.
    if cfg._target_.endswith("ModelCheckpoint") and not cfg.get("dirpath"):
        return instantiate(cfg, dirpath=str(output_dir / "checkpoints"))
    return instantiate(cfg)


def _loggers(cfg: DictConfig, run_id: str) -> list[Logger]:
    """The `logger` group's loggers; each MLFlowLogger writes into the run train() opened (ranks > 0
    have none: run_id ""), on the store `tracking` resolves (MLflow >= 3.13 needs the URI passed)."""
    loggers = []
    for entry in (cfg.get("logger") or {}).values():
        if entry is None:
            continue
        if str(entry._target_).endswith("MLFlowLogger"):
            loggers.append(instantiate(entry, tracking_uri=tracking.tracking_uri(), run_id=run_id or None))
        else:
            loggers.append(instantiate(entry))
    return loggers


def train(cfg: DictConfig, output_dir: str | Path) -> TrainResult:
    """One training run into ``output_dir``; with ``cfg.resume`` true, an unfinished run there
    (``run_state.json`` + ``checkpoints/last.ckpt``) continues in its own MLflow run."""
    output_dir = Path(output_dir).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        if cfg.data.get("quarantine_path", "unset") is None:
            cfg.data.quarantine_path = str(output_dir / "quarantine.csv")  # one report per run
    qat_cfg = qat.QATConfig.from_mapping(OmegaConf.to_container(cfg.qat, resolve=True) if "qat" in cfg else None)
    if qat_cfg.enabled:
        qat.apply_qat_overrides(cfg, qat_cfg)
    # Before anything random (weight init, splits, sampler): the same seed gives the same run.
    L.seed_everything(cfg.seed, workers=True)
    resume_hash = _resume_hash(cfg)
    point = R.resume_point(output_dir, resume_hash) if cfg.get("resume") else None

    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    module = build_module(cfg, datamodule)
    if qat_cfg.enabled:
        qat.start_from_checkpoint(module, qat_cfg)
    distill_cfg = DistillConfig.from_mapping(OmegaConf.to_container(cfg.distill, resolve=True) if "distill" in cfg else None)
    if distill_cfg.enabled:
        module.distiller = load_teachers(distill_cfg, module.class_names, module.meta["preprocessing"], datamodule.fingerprint)
        module.meta["distill"] = module.distiller.record

    t = cfg.tracking
    run_name = t.run_name or tracking.new_run_name(cfg.model.name, _loss_name(cfg), datamodule.dataset_name)
    # DDP runs train() once per rank (Lightning re-runs the command, SLURM/torchrun start one task
    # per device): rank 0 owns the MLflow run, the other ranks train without one.
    rank_zero = rank_zero_only.rank == 0
    run_id_to_open = point.run_id if point else t.run_id
    run_context = (
        tracking.start_run(
            t.experiment,
            run_name=run_name,
            run_id=run_id_to_open,
            parent_run_id=None if point else t.parent_run_id,
            nested=bool(t.parent_run_id),
        )
        if rank_zero
        else contextlib.nullcontext()
    )
    with run_context as run:
        run_id = run.info.run_id if rank_zero else ""
        if rank_zero and point is None:
            R.write_state(output_dir, run_id=run_id, config_hash=resume_hash, finished=False)
            _log_run_record(cfg, datamodule, output_dir)
            mlflow.log_metric("model/num_params", sum(p.numel() for p in module.net.parameters()))
        elif rank_zero:
            log.info("resuming run %s from %s", run_id, point.checkpoint)
            mlflow.set_tag("resumed_from", str(point.checkpoint))
        loggers = _loggers(cfg, run_id)
        # A progress-bar callback and enable_progress_bar=false cannot be combined: the flag wins.
        show_bar = cfg.trainer.get("enable_progress_bar", True)
        callbacks = [
            _callback(c, output_dir)
            for c in cfg.callbacks.values()
            if c is not None and (show_bar or not str(c._target_).endswith("ProgressBar"))
        ]
        precision = training_precision(cfg.trainer.get("precision", "32-true"), cfg.trainer.get("accelerator", "cpu"))
        if rank_zero:
            mlflow.set_tag("trainer.precision_used", precision)  # what ran, after a bf16 fallback
        trainer: L.Trainer = instantiate(
            cfg.trainer,
            callbacks=callbacks,
            logger=loggers or False,
            default_root_dir=str(output_dir),
            precision=precision,
        )
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(point.checkpoint) if point else None)
        # test() replaces callback_metrics: keep the fit's (val/macro_f1_best is what sweeps optimise).
        fit_metrics = _scalar_metrics(trainer)

        ckpt_cb = trainer.checkpoint_callback
        best = Path(ckpt_cb.best_model_path) if ckpt_cb and ckpt_cb.best_model_path else None
        # The test split is scored once, by the model val selected, and only reported.
        trainer.test(module, datamodule=datamodule, ckpt_path=str(best) if best else None)
        metrics = {**fit_metrics, **_scalar_metrics(trainer)}
        scored = module.scored_test()  # every rank takes part in the gather

        if trainer.is_global_zero:
            metrics.update(_log_test_report(scored, module, datamodule, run_id, output_dir))
            if best and t.log_checkpoint:
                mlflow.log_artifact(str(best), artifact_path="checkpoints")
        if best is None:
            best = output_dir / "checkpoints" / "last.ckpt"
            trainer.save_checkpoint(best)
        if rank_zero:
            R.write_state(output_dir, finished=True)
    log.info("run %s (%s): %s", run_name, run_id, {k: round(v, 4) for k, v in metrics.items() if k.startswith("test/")})
    return TrainResult(metrics, run_id, best, output_dir, list(datamodule.class_names))


def main_metric(result: TrainResult, name: str) -> float | None:
    """The value the Hydra sweeper optimises."""
    value: Any = result.metrics.get(name)
    return None if value is None else float(value)
