"""The LightningModule: optimisation, EMA, MixUp/CutMix and honest metrics.

Validation and test use plain cross-entropy whatever the training loss, so runs with
different losses compare on the same scale (timm's habit).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from timm.utils import ModelEmaV3
from torch import nn
from torchmetrics import MaxMetric, MeanMetric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score, MulticlassRecall

from ferops.seeding import derived_seed
from ferops.training import qat
from ferops.training.distill import Distiller
from ferops.training.mixup import mix_batch


def build_ema(net: nn.Module, decay: float) -> ModelEmaV3:
    """timm's EMA of `net`, with the warm-up ferops always used: after n updates the decay is
    min(decay, (1 + n) / (10 + n)), so early epochs are not dominated by the init."""
    # timm's warm-up is 1 - (1 + s / gamma) ** -power with s = step - update_after_step - 1:
    # gamma=9, power=1, update_after_step=-2 give exactly (1 + n) / (10 + n) at step=n.
    # exclude_buffers: BN statistics are copied, not averaged (as before); plain lerp (no
    # stochastic rounding: the weights are float32, and its generator would not follow .to(device)).
    ema = ModelEmaV3(
        net,
        decay=decay,
        use_warmup=True,
        warmup_gamma=9.0,
        warmup_power=1.0,
        update_after_step=-2,
        exclude_buffers=True,
        stochastic_rounding=False,
    )
    return ema.requires_grad_(False)  # never trained: DDP must not wait for its gradients


def warmup_cosine(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int, min_lr_ratio: float
) -> torch.optim.lr_scheduler.LRScheduler:
    """Per step: linear warm-up from lr / warmup_steps to lr over `warmup_steps`, then cosine decay
    to min_lr_ratio * lr at `total_steps`."""
    warmup_steps = max(1, warmup_steps)
    # torch's floor (eta_min) is one lr for every param group: min_lr_ratio x the lowest group lr, so
    # no group's lr ever rises (exactly the ratio of each group when backbone_lr_mult = 1).
    floor = min_lr_ratio * min(g["lr"] for g in optimizer.param_groups)
    warmup = torch.optim.lr_scheduler.LinearLR(
        optimizer, start_factor=1.0 / warmup_steps, end_factor=1.0, total_iters=max(1, warmup_steps - 1)
    )
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total_steps - warmup_steps), eta_min=floor)
    return torch.optim.lr_scheduler.SequentialLR(optimizer, [warmup, cosine], milestones=[warmup_steps])


class FERClassifier(L.LightningModule):
    def __init__(
        self,
        net: nn.Module,
        preprocess: nn.Module,
        loss: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        class_names: list[str],
        warmup_epochs: float = 1.0,
        min_lr_ratio: float = 0.01,
        backbone_lr_mult: float = 1.0,
        ema_decay: float = 0.0,
        mixup: dict[str, float] | None = None,
        meta: dict[str, Any] | None = None,
        seed: int | None = None,
    ):
        super().__init__()
        # Objects are rebuilt from the stored config (see checkpoint.py); only plain values go here.
        self.save_hyperparameters(ignore=["net", "preprocess", "loss", "optimizer", "meta"])
        self.net = net
        self.preprocess = preprocess
        self.loss = loss
        self.optimizer_factory = optimizer
        self.class_names = list(class_names)
        self.ema = build_ema(net, ema_decay) if ema_decay > 0 else None
        self._ema_step = 0  # the optimizer step the EMA last took in
        self.mixup = dict(mixup or {})
        self.meta = dict(meta or {})
        self._mix_rng = np.random.default_rng(seed)  # reseeded every step in _reseed_step
        self.qat: qat.QATHandles | None = None  # set by ferops.training.run for a QAT fine-tune
        # set by ferops.training.run when distilling; a plain attribute, not a submodule, so the
        # teachers' weights stay out of this model's state_dict and checkpoint
        self.distiller: Distiller | None = None
        n = len(self.class_names)

        def metrics() -> MetricCollection:
            return MetricCollection(
                {
                    "acc": MulticlassAccuracy(n, average="micro"),
                    "macro_f1": MulticlassF1Score(n, average="macro"),
                    "recall": MulticlassRecall(n, average="none"),
                }
            )

        self.train_loss, self.val_loss, self.test_loss = MeanMetric(), MeanMetric(), MeanMetric()
        self.train_metrics, self.val_metrics, self.test_metrics = metrics(), metrics(), metrics()
        # persistent: the best-so-far value travels in the checkpoint, so a resumed run keeps it
        self.val_f1_best = MaxMetric()
        self.val_f1_best.persistent(True)
        self.test_probs: list[torch.Tensor] = []
        self.test_labels: list[torch.Tensor] = []
        self.test_index: list[torch.Tensor] = []

    # -- forward ---------------------------------------------------------------------------
    @property
    def eval_net(self) -> nn.Module:
        """Weights used for validation, test and export: the EMA copy when EMA is on."""
        return self.ema.module if self.ema is not None else self.net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images: float [B, 1, 48, 48] raw pixels in [0, 255]."""
        return self.net(self.preprocess(images.float()))

    # -- steps -----------------------------------------------------------------------------
    def _reseed_step(self) -> None:
        # Dropout and MixUp/CutMix draws of this step follow from (seed, step, rank) alone (see
        # ferops.seeding): a resumed run replays them exactly.
        seed = self.hparams.get("seed")
        if seed is None:
            return
        step_seed = derived_seed(seed, self.global_step, self.global_rank)
        torch.manual_seed(step_seed)
        self._mix_rng = np.random.default_rng(step_seed)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        self._reseed_step()
        images, labels = batch["image"].float(), batch["label"]
        target = batch.get("soft", labels)
        if self.mixup.get("prob", 0) > 0:
            images, target = mix_batch(images, target, len(self.class_names), rng=self._mix_rng, **self.mixup)
        logits = self(images)
        loss = self.loss(logits, target)
        if self.distiller is not None:  # the teachers see the same (augmented, mixed) batch
            loss = self.distiller.loss(logits, images, loss)
        self.train_loss(loss)
        self.train_metrics.update(logits.detach(), labels)
        self.log("train/loss", self.train_loss, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def on_train_start(self) -> None:
        self._ema_step = self.global_step  # a resumed run continues from its checkpoint's step
        if self.distiller is not None:
            self.distiller.follow(self.net)

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        # After the optimizer step (training_step runs inside its closure, before it): the average
        # takes in the weights of every step, the last one included; once per step when
        # gradients accumulate.
        if self.ema is not None and self.global_step > self._ema_step:
            self._ema_step = self.global_step
            self.ema.update(self.net, step=self.global_step)

    def _eval_step(self, batch, loss_metric: MeanMetric, metrics: MetricCollection) -> torch.Tensor:
        images, labels = batch["image"].float(), batch["label"]
        logits = self.eval_net(self.preprocess(images))
        loss_metric(F.cross_entropy(logits, labels))
        metrics.update(logits, labels)
        return logits

    def validation_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch, self.val_loss, self.val_metrics)
        self.log("val/loss", self.val_loss, on_step=False, on_epoch=True, prog_bar=True)

    def test_step(self, batch, batch_idx: int) -> None:
        logits = self._eval_step(batch, self.test_loss, self.test_metrics)
        self.test_probs.append(logits.float().softmax(-1).cpu())  # float: bf16 has no numpy
        self.test_labels.append(batch["label"].cpu())
        self.test_index.append(batch["index"].cpu())
        self.log("test/loss", self.test_loss, on_step=False, on_epoch=True)

    # -- epoch ends ------------------------------------------------------------------------
    def _log_metrics(self, stage: str, metrics: MetricCollection) -> dict[str, float]:
        values = metrics.compute()
        headline = {f"{stage}/acc": values["acc"].item(), f"{stage}/macro_f1": values["macro_f1"].item()}
        recalls = {f"{stage}/recall/{name}": r for name, r in zip(self.class_names, values["recall"].tolist(), strict=True)}
        metrics.reset()
        self.log_dict(headline, prog_bar=stage == "val")
        self.log_dict(recalls)
        return {**headline, **recalls}

    def on_train_epoch_end(self) -> None:
        self._log_metrics("train", self.train_metrics)

    def on_validation_epoch_end(self) -> None:
        out = self._log_metrics("val", self.val_metrics)
        self.val_f1_best(out["val/macro_f1"])
        self.log("val/macro_f1_best", self.val_f1_best.compute(), prog_bar=True)

    def on_test_epoch_start(self) -> None:
        self.test_probs.clear()
        self.test_labels.clear()
        self.test_index.clear()

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test", self.test_metrics)

    def scored_test(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row indices, probabilities, labels) of the test rows the last test loop scored, each
        row once, gathered from every rank (DDP gives each rank a part, padded with repeats)."""
        parts = [(torch.cat(self.test_index), torch.cat(self.test_probs), torch.cat(self.test_labels))] if self.test_index else []
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            gathered: list = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(gathered, parts)
            parts = [p for rank_parts in gathered for p in rank_parts]
        if not parts:
            return np.zeros(0, np.int64), np.zeros((0, len(self.class_names)), np.float32), np.zeros(0, np.int64)
        index = torch.cat([p[0] for p in parts]).numpy()
        probs = torch.cat([p[1] for p in parts]).numpy()
        labels = torch.cat([p[2] for p in parts]).numpy()
        index, first = np.unique(index, return_index=True)
        return index, probs[first], labels[first]

    # -- optimisation ----------------------------------------------------------------------
    def configure_optimizers(self):
        base_lr = self.optimizer_factory.keywords.get("lr", 1e-3)
        head = list(self.net.head.parameters())
        backbone = list(self.net.backbone.parameters())
        groups = [
            {"params": backbone, "lr": base_lr * self.hparams.backbone_lr_mult, "name": "backbone"},
            {"params": head, "lr": base_lr, "name": "head"},
        ]
        optimizer = self.optimizer_factory(params=groups)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        max_epochs = max(1, self.trainer.max_epochs or 1)
        warmup = round(self.hparams.warmup_epochs * total / max_epochs)
        scheduler = warmup_cosine(optimizer, total, warmup, self.hparams.min_lr_ratio)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def train(self, mode: bool = True) -> FERClassifier:
        super().train(mode)
        if getattr(self, "qat", None) is not None:  # QAT fine-tunes with frozen batch norms (ferops.training.qat)
            qat.freeze_batch_norm(self.net)
        return self

    # -- checkpoint ------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Everything needed to rebuild the deployable model without Hydra or the data.
        checkpoint["ferops"] = {**self.meta, "class_names": self.class_names}
        # a QAT run's fake quantisation is not part of the model: the checkpoint holds float weights
        checkpoint["state_dict"] = qat.plain_state_dict(checkpoint["state_dict"])

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Checkpoints of the hand-written EMA (before timm's) also stored its update count; the
        # count is now the global step, which Lightning restores.
        checkpoint.get("state_dict", {}).pop("ema.steps", None)
        if self.qat is not None:  # back under the fake-quantised module's keys
            checkpoint["state_dict"] = qat.parametrized_state_dict(checkpoint["state_dict"], self.state_dict().keys())
