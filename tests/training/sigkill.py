"""A callback that kills its own process with SIGKILL at a given epoch and batch, when
``FEROPS_TEST_SIGKILL=1`` (so the killed run and its resumption share one configuration)."""

from __future__ import annotations

import os
import signal

import lightning as L


class SigkillAt(L.Callback):
    def __init__(self, epoch: int = 1, batch: int = 2):
        self.epoch, self.batch = epoch, batch

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if os.environ.get("FEROPS_TEST_SIGKILL") == "1" and (trainer.current_epoch, batch_idx) == (self.epoch, self.batch):
            os.kill(os.getpid(), signal.SIGKILL)  # no clean-up, no checkpoint: a real crash
