"""Training images/s.

Default: the default model fed three ways:

  (a) ferops: FERDataModule (uint8 tensors, index batches) + BatchAugment on the batch
  (b) naive: per-sample PIL + torchvision transforms in a Dataset, default DataLoader collation
  (c) upper bound: the model alone on one ready-made tensor batch (no data work at all)

Same model, optimiser, loss and batch size in each; target (a) >= 0.9 x (c).

    python benchmarks/train_throughput.py [--data PATH_TO_FER2013_CSV] [--steps 40] [--threads 2]

``--precision``: numeric precision / memory format variants side by side (fp32, bf16 autocast,
bf16 + channels_last, bf16 + channels_last + torch.compile) for fer_vgg (the fer2013_cpu preset's
widths), fer_resnet and mobilenetv3_small_100, with the ratio to fp32: the bare step (forward,
backward, AdamW on one ready batch) of each, and for the preset's model the full Lightning training
step of ``experiment=fer2013_cpu`` (datamodule, BatchAugment, label smoothing, EMA, metric logging).
Target: full step bf16 default >= 1.8 x fp32.

    python benchmarks/train_throughput.py --precision [--data PATH_TO_FER2013_CSV] [--steps 30]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from ferops.models.preprocess import Preprocess
from ferops.stages.params import compose_params


class NaivePILDataset(Dataset):
    """What a first implementation does: one PIL image and a transform chain per sample."""

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        self.images, self.labels = images, labels
        self.transform = T.Compose(
            [
                T.RandomResizedCrop(48, scale=(0.8, 1.0), ratio=(0.9, 1.1)),
                T.RandomHorizontalFlip(),
                T.RandomRotation(10),
                T.ColorJitter(brightness=0.15, contrast=0.25),
                T.PILToTensor(),
                T.RandomErasing(p=0.25),
            ]
        )

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return {"image": self.transform(Image.fromarray(self.images[i])), "label": int(self.labels[i])}


def timed_steps(model, optimizer, batches, steps: int, warmup: int = 5, augment=None, bf16: bool = False) -> float:
    """images/s over `steps` optimiser steps after `warmup` steps (``bf16``: under CPU bf16 autocast)."""
    model.train()
    seen, t0 = 0, None
    for i, batch in enumerate(itertools.islice(batches, warmup + steps)):
        if i == warmup:
            seen, t0 = 0, time.perf_counter()
        x = batch["image"].float()
        if augment is not None:
            x = augment(x)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(x), batch["label"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        seen += x.shape[0]
    return seen / (time.perf_counter() - t0)


PRECISION_VARIANTS = {  # name: (bf16 autocast, channels_last, torch.compile)
    "fp32": (False, False, False),
    "bf16": (True, False, False),
    "bf16+channels_last": (True, True, False),
    "bf16+channels_last+compile": (True, True, True),
}
PRECISION_MODELS = ("fer_vgg", "fer_resnet", "mobilenetv3_small_100")


def bare_step_ips(model, batch, steps: int, bf16: bool, channels_last: bool, compile_: bool) -> float:
    """images/s of forward + backward + AdamW on one ready batch (no data work)."""
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        batch = {**batch, "image": batch["image"].contiguous(memory_format=torch.channels_last)}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    run = torch.compile(model) if compile_ else model
    # compile: the first steps build the kernels
    return timed_steps(run, opt, itertools.repeat(batch), steps, warmup=8 if compile_ else 4, bf16=bf16)


class _StepClock(L.Callback):
    """images/s over the training batches after the first ``warmup`` of a Lightning fit."""

    def __init__(self, warmup: int):
        self.warmup, self.images, self.t0, self.t1 = warmup, 0, 0.0, 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == self.warmup:
            self.t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if batch_idx >= self.warmup:
            self.images += int(batch["label"].shape[0])
            self.t1 = time.perf_counter()


def full_step_ips(cfg, dm, steps: int, bf16: bool, channels_last: bool, compile_: bool) -> float:
    """images/s of the preset's own Lightning training step (what `ferops.train` runs per batch) on
    the set-up datamodule ``dm`` of ``cfg.data``."""
    from ferops.training.callbacks import ChannelsLast
    from ferops.training.run import build_module

    torch.manual_seed(0)
    module = build_module(cfg, dm)
    if compile_:
        module.net = torch.compile(module.net)
    warmup = 8 if compile_ else 4
    clock = _StepClock(warmup)
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        precision="bf16-mixed" if bf16 else "32-true",
        max_epochs=1,
        limit_train_batches=warmup + steps,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        gradient_clip_val=cfg.trainer.gradient_clip_val,
        callbacks=[clock, *([ChannelsLast()] if channels_last else [])],
    )
    trainer.fit(module, datamodule=dm)
    return clock.images / (clock.t1 - clock.t0)


def precision_table(args) -> None:
    data = [f"data.path={args.data}"] if args.data else ["data=synthetic", "data.source.n_per_class=400"]
    preset = compose_params(["experiment=fer2013_cpu", *data, "data.quarantine_path=null", *args.overrides])
    bs = preset.data.batch_size
    dm = instantiate(preset.data)
    dm.setup("fit")
    images, labels = dm.split_arrays("train")
    batch = {"image": torch.from_numpy(images[:bs]).unsqueeze(1).float(), "label": torch.from_numpy(labels[:bs])}
    print(f"batch={bs} threads={args.threads} steps={args.steps} data={'fer2013' if args.data else 'synthetic'}")
    print(f"{'model':24s} {'step':5s} " + " ".join(f"{v:>28s}" for v in PRECISION_VARIANTS))
    for name in PRECISION_MODELS:
        # the preset's fer_vgg; the others with their own defaults (the preset's model keys are fer_vgg's)
        cfg = preset if name == "fer_vgg" else compose_params([f"model={name}", "data.quarantine_path=null"])
        row = {}
        for variant, flags in PRECISION_VARIANTS.items():
            torch.manual_seed(0)
            model = torch.nn.Sequential(
                Preprocess.from_dict(dm.preprocessing), instantiate(cfg.model, num_classes=dm.num_classes)
            )
            try:
                row[variant] = bare_step_ips(model, batch, args.steps, *flags)
            except Exception as err:  # a compile backend missing: report, keep the other variants
                print(f"  {name} {variant}: failed: {type(err).__name__}: {str(err)[:200]}")
        _print_row(name, "bare", row)
    full = {}
    for variant, flags in PRECISION_VARIANTS.items():
        try:
            full[variant] = full_step_ips(preset, dm, args.steps, *flags)
        except Exception as err:
            print(f"  full step {variant}: failed: {type(err).__name__}: {str(err)[:200]}")
    _print_row(f"{preset.model.name} (fer2013_cpu)", "full", full)


def _print_row(name: str, kind: str, row: dict[str, float]) -> None:
    base = row.get("fp32")
    cells = []
    for variant in PRECISION_VARIANTS:
        ips = row.get(variant)
        cells.append(
            f"{'failed':>28s}" if ips is None else f"{ips:9.1f} img/s ({ips / base if base else float('nan'):4.2f}x)".rjust(28)
        )
    print(f"{name:24s} {kind:5s} " + " ".join(cells), flush=True)


def cycle(loader):
    while True:
        yield from loader


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="FER2013 CSV (default: the embedded synthetic faces)")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--overrides", nargs="*", default=[], help="extra Hydra overrides, e.g. model=resnet18")
    parser.add_argument("--precision", action="store_true", help="the precision / memory format table")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.precision:
        precision_table(args)
        return

    overrides = list(args.overrides) + (["data=fer2013", f"data.source.path={args.data}"] if args.data else [])
    cfg = compose_params([*overrides, "data.quarantine_path=null"])
    dm = instantiate(cfg.data)
    dm.setup("fit")
    images, labels = dm.split_arrays("train")

    def fresh_model():
        torch.manual_seed(0)
        net = instantiate(cfg.model, num_classes=dm.num_classes)
        model = torch.nn.Sequential(Preprocess.from_dict(dm.preprocessing), net)
        return model, torch.optim.AdamW(model.parameters(), lr=1e-3)

    bs = cfg.data.batch_size
    results = {}
    model, opt = fresh_model()
    ready = {"image": torch.from_numpy(images[:bs]).unsqueeze(1).float(), "label": torch.from_numpy(labels[:bs])}
    results["(c) model alone, ready tensors"] = timed_steps(model, opt, itertools.repeat(ready), args.steps)

    model, opt = fresh_model()
    aug = dm.augment.train() if dm.augment is not None else None
    results["(a) ferops datamodule + BatchAugment"] = timed_steps(
        model, opt, cycle(dm.train_dataloader()), args.steps, augment=aug
    )

    model, opt = fresh_model()
    naive = DataLoader(NaivePILDataset(images, labels), batch_size=bs, shuffle=True, drop_last=True, num_workers=0)
    results["(b) naive per-sample PIL + torchvision"] = timed_steps(model, opt, cycle(naive), args.steps)

    upper = results["(c) model alone, ready tensors"]
    print(
        f"model={cfg.model.name} batch={bs} threads={args.threads} steps={args.steps} data={'fer2013' if args.data else 'synthetic'}"
    )
    for name, ips in sorted(results.items()):
        print(f"  {name:42s} {ips:8.1f} img/s   {ips / upper:5.2f} x (c)")


if __name__ == "__main__":
    main()
