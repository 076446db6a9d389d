"""Conditional part of the Optuna search space (`hydra.sweeper.custom_search_space`).

`hydra.sweeper.params` holds the flat space (learning rate, weight decay, the loss, MixUp on/off).
A loss parameter only exists for its own loss (`loss.gamma` is a key of conf/loss/focal.yaml
only), and the MixUp strength only matters when MixUp is on, so those are suggested here, after
the sweeper has sampled the flat space for the trial. Each suggestion becomes an override
(`loss.gamma=1.7`) and an Optuna parameter (it shows in the best params and the trials table).
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

# loss group choice -> {config key: (low, high, log)}
LOSS_PARAMS: dict[str, dict[str, tuple[float, float, bool]]] = {
    "focal": {"loss.gamma": (0.5, 4.0, False)},
    "label_smoothing": {"loss.smoothing": (0.02, 0.3, False)},
}
MIXUP_ALPHA = ("optim.mixup.mixup_alpha", 0.1, 1.0, False)


def _value(cfg: DictConfig, trial: Any, key: str, choice_key: str | None = None) -> Any:
    """A parameter as this trial will run it: sampled, fixed on the command line, or the config's."""
    if key in trial.params:
        return trial.params[key]
    if key in trial.user_attrs:  # fixed overrides (e.g. `loss=focal` next to the preset)
        return trial.user_attrs[key]
    return OmegaConf.select(cfg, choice_key or key)


def fer_search_space(cfg: DictConfig, trial: Any) -> None:
    loss = _value(cfg, trial, "loss", choice_key="hydra.runtime.choices.loss")
    for key, (low, high, log) in LOSS_PARAMS.get(str(loss), {}).items():
        if key not in trial.params and key not in trial.user_attrs:
            trial.suggest_float(key, low, high, log=log)
    prob = _value(cfg, trial, "optim.mixup.prob")
    key, low, high, log = MIXUP_ALPHA
    if prob is not None and float(prob) > 0 and key not in trial.params and key not in trial.user_attrs:
        trial.suggest_float(key, low, high, log=log)
