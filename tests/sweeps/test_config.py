"""Sweep and scale-out presets compose; the project config enables the sweep callback; the
Optuna conditional search space suggests each loss parameter only for its own loss."""

from __future__ import annotations

import optuna
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import OmegaConf

from confutil import CONF_DIR
from ferops.sweeps import PARENT_RUN_ENV, MLflowSweepCallback
from ferops.sweeps.callback import split_override
from ferops.sweeps.search_space import LOSS_PARAMS, fer_search_space
from ferops.tracking import mlflow_key


def _compose(overrides: list[str]):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=overrides, return_hydra_config=True)


def test_config_enables_sweep_callback(monkeypatch):
    """config.yaml: `- override hydra/callbacks: mlflow_sweep`; tracking/mlflow.yaml:
    `parent_run_id: ${oc.env:FEROPS_PARENT_RUN_ID,null}`."""
    cfg = _compose([])
    assert "mlflow_sweep" in (cfg.hydra.callbacks or {}), "config.yaml does not enable hydra/callbacks=mlflow_sweep"
    assert isinstance(instantiate(cfg.hydra.callbacks.mlflow_sweep), MLflowSweepCallback)
    monkeypatch.delenv(PARENT_RUN_ENV, raising=False)
    assert cfg.tracking.parent_run_id is None
    monkeypatch.setenv(PARENT_RUN_ENV, "abc123")
    assert cfg.tracking.parent_run_id == "abc123", "tracking.parent_run_id does not read $FEROPS_PARENT_RUN_ID"


@pytest.mark.parametrize(
    ("overrides", "target"),
    [
        (["hydra/launcher=local_parallel"], "JoblibLauncher"),
        (["hydra/launcher=slurm"], "SlurmLauncher"),
        (["hydra/launcher=slurm_ddp", "trainer=ddp"], "SlurmLauncher"),
    ],
)
def test_launcher_presets_compose(overrides, target):
    cfg = _compose(overrides)
    assert cfg.hydra.launcher._target_.endswith(target)
    if "slurm_ddp" in overrides[0]:
        assert cfg.hydra.launcher.tasks_per_node == cfg.hydra.launcher.gpus_per_node
        assert cfg.trainer.strategy == "ddp"


def test_optuna_preset_composes():
    cfg = _compose(["hparams_search=fer_optuna"])
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper")
    assert cfg.hydra.mode.name == "MULTIRUN"
    assert sweeper.direction == "maximize"
    assert cfg.optimized_metric == "val/macro_f1_best"
    assert {"optim.optimizer.lr", "optim.optimizer.weight_decay", "loss", "optim.mixup.prob"} <= set(sweeper.params)
    assert sweeper.custom_search_space == "ferops.sweeps.search_space.fer_search_space"
    # every swept key exists in the composed config (a typo would only fail at trial time)
    for key in sweeper.params:
        if key != "loss":
            assert OmegaConf.select(cfg, key) is not None, key


@pytest.mark.parametrize("loss", ["ce", "focal", "label_smoothing"])
def test_search_space_is_conditional_on_the_loss(loss):
    cfg = _compose(["hparams_search=fer_optuna"])
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    trial.suggest_categorical("loss", [loss])
    trial.suggest_categorical("optim.mixup.prob", [0.5])
    fer_search_space(cfg, trial)
    expected = set(LOSS_PARAMS.get(loss, {}))
    loss_keys = {k for k in trial.params if k.startswith("loss.")}
    assert loss_keys == expected
    for key in expected:  # the suggested key is a key of that loss's config
        assert OmegaConf.select(_compose([f"loss={loss}"]), key) is not None
    assert "optim.mixup.mixup_alpha" in trial.params


def test_search_space_skips_mixup_alpha_when_mixup_is_off():
    cfg = _compose(["hparams_search=fer_optuna"])
    trial = optuna.create_study().ask()
    trial.suggest_categorical("optim.mixup.prob", [0.0])
    fer_search_space(cfg, trial)  # loss from the config's choice: ce
    assert set(trial.params) == {"optim.mixup.prob"}


def test_param_keys_are_made_valid_for_mlflow():
    key, value = split_override("+trainer.limit_train_batches=2")
    assert mlflow_key(f"overrides.{key}") == "overrides._trainer.limit_train_batches"
    assert value == "2"
    assert split_override("model=a,b,c") == ("model", "a,b,c")
