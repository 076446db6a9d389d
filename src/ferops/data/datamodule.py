"""`FERDataModule`: prepared uint8 arrays served as tensor batches, no per-sample Python/PIL work.

The whole split lives in one uint8 tensor [N, 1, 48, 48]; an `IndexBatchSampler` yields shuffled index
tensors and `TensorBatchDataset.__getitem__` gathers a whole batch at once (``DataLoader(batch_size=None)``).
Batches are ``{"image": uint8 [B,1,48,48], "label": int64 [B]}`` plus ``"soft": float32 [B,C]`` for
soft-label sources. After the transfer to the device, ``on_after_batch_transfer`` turns the image into
float32 0..255 and, only while the trainer is training, applies `BatchAugment`.

Under DDP Lightning wraps the index-batch sampler in its ``DistributedSamplerWrapper``, which deals
whole batches to the ranks; no special setting is needed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset, Sampler

from ferops.data.augment import BatchAugment
from ferops.data.class_map import CLASSES_FROM_MAP, ClassMap, fer7
from ferops.data.constants import SPLITS
from ferops.data.prepare import PreparedData, load_prepared, prepare_dataset

# the record's format belongs to the model's first layer (models/preprocess.py); data only fills it in
from ferops.models.preprocess import preprocessing_dict
from ferops.seeding import derived_seed

log = logging.getLogger(__name__)


def _plain(obj):
    """OmegaConf containers -> plain python (other objects unchanged)."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf
    except ImportError:  # pragma: no cover
        return obj
    if isinstance(obj, (DictConfig, ListConfig)):
        return OmegaConf.to_container(obj, resolve=True)
    return obj


def _instantiate(obj, **defaults):
    """A ``{_target_: ...}`` mapping -> object (``defaults`` fill missing keys); objects pass through."""
    obj = _plain(obj)
    if isinstance(obj, Mapping) and "_target_" in obj:
        from hydra.utils import instantiate

        return instantiate({**defaults, **obj})
    return obj


class TensorBatchDataset(Dataset):
    """Map-style dataset whose keys are index tensors: ``ds[idx]`` is a whole batch dict."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, soft: torch.Tensor | None = None):
        self.images, self.labels, self.soft = images, labels, soft

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, idx) -> dict[str, torch.Tensor]:
        idx = torch.as_tensor(idx, dtype=torch.long)
        # "index": the rows of the split, so a report can name exactly what was scored
        batch = {"image": self.images[idx], "label": self.labels[idx], "index": idx}
        if self.soft is not None:
            batch["soft"] = self.soft[idx]
        return batch


SAMPLERS = ("shuffle", "balanced")


def check_sampler(sampler: str, power: float) -> None:
    if sampler not in SAMPLERS:
        raise ValueError(f"data.sampler must be one of {SAMPLERS}, got {sampler!r}")
    if not 0.0 <= power <= 1.0:
        raise ValueError(f"data.sampler_power must be in [0, 1], got {power}")


def row_weights(labels: np.ndarray, power: float) -> np.ndarray:
    """Per-row sampling weights ``count(class)^-power``: 0 keeps the data's class frequencies
    (a plain shuffle), 1 draws every class equally often, values between interpolate."""
    counts = np.bincount(labels).astype(np.float64)
    return counts[labels] ** -float(power)


class IndexBatchSampler(Sampler):
    """Yields int64 index tensors of ``batch_size`` (shuffled each epoch when ``shuffle``).

    With ``seed`` the order of epoch k is ``randperm(n)`` from a generator seeded with ``seed + k``;
    without it the global torch RNG is used (follows ``seed_everything``). With ``weights`` (one per
    row) an epoch is ``n`` rows drawn with replacement in proportion to them instead (the balanced
    sampler, `row_weights`), from the same generator.
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int | None = None,
        weights: np.ndarray | None = None,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.n, self.batch_size, self.shuffle, self.seed = int(n), int(batch_size), bool(shuffle), seed
        self.drop_last = bool(drop_last) and self.n >= self.batch_size
        self.weights = None if weights is None else torch.as_tensor(np.asarray(weights, np.float64))
        if self.weights is not None and self.weights.shape != (self.n,):
            raise ValueError(f"weights: one per row needed ({self.n}), got shape {tuple(self.weights.shape)}")
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)

    def __iter__(self):
        if self.shuffle:
            gen = None
            if self.seed is not None:
                gen = torch.Generator().manual_seed(int(self.seed) + self.epoch)
            if self.weights is not None:
                order = torch.multinomial(self.weights, self.n, replacement=True, generator=gen)
            else:
                order = torch.randperm(self.n, generator=gen)
            self.epoch += 1
        else:
            order = torch.arange(self.n)
        for k in range(len(self)):
            yield order[k * self.batch_size : (k + 1) * self.batch_size]


class FERDataModule(LightningDataModule):
    """Data for training/evaluation: source -> class map -> splits -> tensor batches.

    Args:
        source: object with ``load() -> RawData`` (or its ``{_target_: ...}`` config).
        class_map: `ClassMap` (or config); default FER-7.
        classes: ``class_map`` (the class map above decides) or ``from_folders`` / ``from_source``: the
            data's own class names, sorted (any labelled image folder; recorded in the data report,
            the checkpoint and the bundle).
        split: `ferops.data.splits.assign_splits` options: strategy, fractions, seed, val_fraction.
        batch_size / eval_batch_size: train batch size; val/test batch size (default: batch_size).
        input_size, in_chans, mean, std: `Preprocess` settings recorded in ``preprocessing``; ``mean``/``std``
            on the 0..1 scale; ``null`` computes them from the train split.
        augment: `BatchAugment` (or config, or None for none).
        on_bad_rows, cache_dir: used when ``source`` is a config without them (configs interpolate them).
        quarantine_path: where the quarantine report is written (None: not written).
        dedupe: ``none`` | ``drop_from_eval``.
        num_workers, pin_memory: DataLoader options (0 workers is the fast default: batches are gathers).
        drop_last: drop the last incomplete train batch (never for val/test).
        sampler: ``shuffle`` (each train row once per epoch) or ``balanced`` (rows drawn with
            replacement, weight ``count(class)^-sampler_power``: 1 = every class equally often).
        sampler_power: between 0 (the data's frequencies) and 1 (fully balanced); balanced only.
        seed: shuffling seed (None: the global torch RNG).
        prepared_dir: read the splits the `prepare` DVC stage wrote there instead of loading ``source``
            (the class names then come from the prepared data).
        path: ``data.path``, the raw data location. Accepted so it can sit beside ``source`` in the
            config; unused here, because the source config interpolates it (and the run's params
            record it).
    """

    def __init__(
        self,
        source,
        class_map: ClassMap | Mapping | None = None,
        classes: str = CLASSES_FROM_MAP,
        split: Mapping | None = None,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        input_size: int = 48,
        in_chans: int = 1,
        mean: float | Sequence[float] | None = (0.5,),
        std: float | Sequence[float] | None = (0.25,),
        augment: BatchAugment | Mapping | None = None,
        on_bad_rows: str = "error",
        quarantine_path: str | os.PathLike | None = None,
        dedupe: str = "none",
        cache_dir: str | os.PathLike | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        drop_last: bool = True,
        sampler: str = "shuffle",
        sampler_power: float = 1.0,
        seed: int | None = None,
        prepared_dir: str | os.PathLike | None = None,
        path: str | os.PathLike | None = None,
    ):
        super().__init__()
        self.prepared_dir = prepared_dir
        self.source = _instantiate(source, on_bad_rows=on_bad_rows, cache_dir=cache_dir)
        cm = _instantiate(class_map)
        if isinstance(cm, Mapping):
            cm = ClassMap(**cm)
        self.class_map: ClassMap = cm or fer7()
        self.classes = str(classes)
        self.split = dict(_plain(split) or {})
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size or batch_size)
        self.input_size, self.in_chans = int(input_size), int(in_chans)
        self._mean, self._std = _plain(mean), _plain(std)
        aug = _instantiate(augment)
        if isinstance(aug, Mapping):
            aug = BatchAugment(**aug)
        self.augment: BatchAugment | None = aug or None
        self.on_bad_rows, self.quarantine_path, self.dedupe = on_bad_rows, quarantine_path, dedupe
        self.cache_dir = cache_dir
        check_sampler(sampler, float(sampler_power))
        self.sampler, self.sampler_power = sampler, float(sampler_power)
        self.num_workers, self.pin_memory, self.drop_last, self.seed = (
            int(num_workers),
            bool(pin_memory),
            bool(drop_last),
            seed,
        )
        self.data: PreparedData | None = None
        self._tensors: dict[str, TensorBatchDataset] = {}

    # ------------------------------------------------------------------ setup
    def setup(self, stage: str | None = None) -> None:
        if self.data is not None:
            return
        if self.prepared_dir:
            self.data = load_prepared(self.prepared_dir)
        else:
            self.data = prepare_dataset(
                self.source, self.class_map, self.split, self.dedupe, self.quarantine_path, classes=self.classes
            )
        self.class_map = self.data.class_map  # the one applied (from_source, or prepared elsewhere)
        for name, s in self.data.splits.items():
            images = torch.from_numpy(np.ascontiguousarray(s.images)).unsqueeze(1)
            labels = torch.from_numpy(s.labels)
            soft = None if s.soft is None else torch.from_numpy(s.soft)
            self._tensors[name] = TensorBatchDataset(images, labels, soft)
        if self._mean is None or self._std is None:
            train = self.data.splits["train"].images.astype(np.float32) / 255.0
            self._mean = [float(train.mean())] if self._mean is None else self._mean
            self._std = [float(train.std()) or 1.0] if self._std is None else self._std
            log.info("normalisation from train: mean %s std %s", self._mean, self._std)
        counts = self.data.report["counts"]
        log.info(
            "%s: %s classes, train/val/test = %d/%d/%d (val %s, test %s)",
            self.dataset_name,
            len(self.class_names),
            counts["train"]["total"],
            counts["val"]["total"],
            counts["test"]["total"],
            self.split_record.get("val_source", "?"),
            self.split_record.get("test_source", "?"),
        )

    def _require(self) -> PreparedData:
        if self.data is None:
            raise RuntimeError("FERDataModule.setup() has not run yet")
        return self.data

    # ------------------------------------------------------------------ contract attributes
    @property
    def class_names(self) -> list[str]:
        # Prepared data carries its own class names (the class map applied when it was prepared).
        return list(self.data.class_names if self.data is not None else self.class_map.names)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def class_counts(self) -> np.ndarray:
        """Rows per class in the train split (int64 [C])."""
        return np.bincount(self._require().splits["train"].labels, minlength=self.num_classes).astype(np.int64)

    @property
    def fingerprint(self) -> str:
        return self._require().fingerprint

    @property
    def dataset_name(self) -> str:
        return self._require().name

    @property
    def report(self) -> dict:
        """JSON-ready data report (counts per split and class, duplicates, quarantine, split notes)."""
        return self._require().report

    @property
    def soft_labels(self) -> bool:
        return self._require().splits["train"].soft is not None

    @property
    def split_record(self) -> dict:
        """Where each split's rows came from, their counts and row-id digests (see `split_record`)."""
        return dict(self._require().split_record)

    @property
    def preprocessing(self) -> dict:
        if self._mean is None or self._std is None:
            self._require()
        return preprocessing_dict(self.input_size, self.in_chans, self._mean, self._std)

    def split_arrays(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """(images uint8 [N, 48, 48], labels int64 [N]) of ``split`` (train/val/test)."""
        s = self._split(split)
        return s.images, s.labels

    def split_soft(self, split: str) -> np.ndarray | None:
        return self._split(split).soft

    def split_ids(self, split: str) -> np.ndarray:
        return self._split(split).ids

    def _split(self, split: str):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return self._require().splits[split]

    # ------------------------------------------------------------------ loaders
    def _loader(self, split: str, train: bool) -> DataLoader:
        self._require()
        ds = self._tensors[split]
        balanced = train and self.sampler == "balanced"
        sampler = IndexBatchSampler(
            len(ds),
            self.batch_size if train else self.eval_batch_size,
            shuffle=train,
            drop_last=self.drop_last and train,
            seed=self.seed,
            weights=row_weights(ds.labels.numpy(), self.sampler_power) if balanced else None,
        )
        return DataLoader(
            ds,
            batch_size=None,
            sampler=sampler,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", train=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test", train=False)

    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        image = batch["image"].float()
        trainer = self.trainer
        if self.augment is not None and trainer is not None and trainer.training:
            generator = None
            if self.seed is not None:  # keyed by (seed, step, rank): a resumed run replays it (ferops.seeding)
                generator = torch.Generator(device=image.device)
                generator.manual_seed(derived_seed(self.seed, trainer.global_step, trainer.global_rank, 1))
            image = self.augment(image, generator=generator)
        batch["image"] = image
        return batch
