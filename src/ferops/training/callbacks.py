"""Training callbacks that are ours (Lightning provides checkpointing, early stopping, LR monitor)."""

from __future__ import annotations

import time

import lightning as L
import torch


class StagedUnfreeze(L.Callback):
    """Keep the backbone frozen (weights and BN statistics) for the first `freeze_epochs`,
    training only the head; afterwards everything trains, the backbone at its own
    (discriminative) learning rate set in `FERClassifier.configure_optimizers`.

    Not Lightning's `BackboneFinetuning`: it keeps the backbone out of the optimizer and adds it as
    a new param group at the unfreeze epoch, outside the per-step warm-up + cosine schedule (whose
    groups are fixed at the start), and it keeps BN statistics training while frozen."""

    def __init__(self, freeze_epochs: int = 0):
        self.freeze_epochs = freeze_epochs

    def _set(self, pl_module, trainable: bool) -> None:
        backbone = pl_module.net.backbone
        for p in backbone.parameters():
            p.requires_grad_(trainable)
        backbone.train(trainable)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if self.freeze_epochs <= 0:
            return
        self._set(pl_module, trainable=trainer.current_epoch >= self.freeze_epochs)


class ImagesPerSecond(L.Callback):
    """Logs `train/images_per_sec` each epoch: training throughput, data work included,
    validation excluded (Lightning validates before `on_train_epoch_end`, so the clock stops at
    the last training batch).

    Not Lightning's `ThroughputMonitor`: that one logs rolling-window step values under
    `train/samples_per_sec` straight to the logger (not `callback_metrics`); the docs' results
    table and the MLflow runs compare this one value per epoch."""

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._images, self._start = 0, time.perf_counter()
        self._last = self._start

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._images += int(batch["label"].shape[0])
        self._last = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        elapsed = self._last - self._start
        if self._images and elapsed > 0:
            pl_module.log("train/images_per_sec", self._images / elapsed)


class ChannelsLast(L.Callback):
    """Puts the model (net, EMA copy, preprocessing) in the channels_last memory format before
    training, so convolutions run on NHWC tensors: with bf16 on a CPU with native bf16, oneDNN's
    fastest layout (docs/results.md, "Training speed"). Inputs need no conversion: a batch of
    one-channel images is already channels_last, and the first conv's output follows the weights.
    Checkpoints are unaffected (a state dict holds values, not strides)."""

    def setup(self, trainer, pl_module, stage: str) -> None:
        pl_module.to(memory_format=torch.channels_last)
