"""Training images/s of the default model fed three ways:

  (a) ferops: FERDataModule (uint8 tensors, index batches) + BatchAugment on the batch
  (b) naive: per-sample PIL + torchvision transforms in a Dataset, default DataLoader collation
  (c) upper bound: the model alone on one ready-made tensor batch (no data work at all)

Same model, optimiser, loss and batch size in each; target (a) >= 0.9 x (c).

    python benchmarks/train_throughput.py [--data PATH_TO_FER2013_CSV] [--steps 40] [--threads 2]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
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


def timed_steps(model, optimizer, batches, steps: int, warmup: int = 5, augment=None) -> float:
    """images/s over `steps` optimiser steps after `warmup` steps."""
    model.train()
    seen, t0 = 0, None
    for i, batch in enumerate(itertools.islice(batches, warmup + steps)):
        if i == warmup:
            seen, t0 = 0, time.perf_counter()
        x = batch["image"].float()
        if augment is not None:
            x = augment(x)
        loss = F.cross_entropy(model(x), batch["label"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        seen += x.shape[0]
    return seen / (time.perf_counter() - t0)


def cycle(loader):
    while True:
        yield from loader


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="FER2013 CSV (default: the embedded synthetic faces)")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--overrides", nargs="*", default=[], help="extra Hydra overrides, e.g. model=resnet18")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    overrides = list(args.overrides) + (["data=fer2013", f"data.source.path={args.data}"] if args.data else [])
    cfg = compose_params([*overrides, "data.quarantine_path=null"])
    dm = instantiate(cfg.data)
    dm.setup("fit")
    images, labels = dm.split_arrays("train")

    def fresh_model():
        torch.manual_seed(0)
        net = instantiate(cfg.model, num_classes=dm.num_classes)
        model = torch.nn.Sequential(dm.make_preprocess(), net)
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
