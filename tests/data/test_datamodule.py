import functools
import operator
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ferops.data import RawData, SyntheticFaces
from ferops.data.augment import BatchAugment
from ferops.data.datamodule import FERDataModule, IndexBatchSampler
from ferops.models.preprocess import Preprocess


@pytest.fixture(scope="module")
def synthetic_dm():
    dm = FERDataModule(SyntheticFaces(n_per_class=20, seed=1), batch_size=16, eval_batch_size=32, augment=BatchAugment(), seed=0)
    dm.setup("fit")
    return dm


def test_contract_attributes(synthetic_dm):
    dm = synthetic_dm
    assert dm.class_names == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert dm.class_counts.tolist() == [16] * 7 and dm.class_counts.dtype == np.int64
    assert dm.dataset_name == "synthetic" and len(dm.fingerprint) == 64
    assert dm.preprocessing == {
        "input_size": 48,
        "in_chans": 1,
        "mean": [0.5],
        "std": [0.25],
        "input_range": [0, 255],
        "layout": "NCHW gray",
        "source_size": 48,
        "resize": "none",
        "normalize": "(x / 255 - mean) / std",
    }
    images, labels = dm.split_arrays("val")
    assert images.dtype == np.uint8 and images.shape == (14, 48, 48) and labels.dtype == np.int64
    assert dm.report["counts"]["train"]["total"] == 112
    with pytest.raises(ValueError, match="split must be one of"):
        dm.split_arrays("holdout")


def test_train_batches(synthetic_dm):
    loader = synthetic_dm.train_dataloader()
    batches = list(loader)
    assert len(batches) == len(loader) == 7  # 112 / 16, drop_last
    b = batches[0]
    assert set(b) == {"image", "label", "index"}  # index: the split rows, for reports of what was scored
    assert b["image"].dtype == torch.uint8 and b["image"].shape == (16, 1, 48, 48)
    assert b["label"].dtype == torch.int64 and b["label"].shape == (16,)
    # a batch is the gather of its indices: compare with the split arrays
    _images, labels = synthetic_dm.split_arrays("train")
    seen = torch.cat([x["label"] for x in batches])
    assert sorted(seen.tolist()) == sorted(labels.tolist())
    # reshuffled each epoch
    again = torch.cat([x["label"] for x in loader])
    assert not torch.equal(seen, again) or len(seen) < 2


def test_eval_batches_are_ordered_and_complete(synthetic_dm):
    loader = synthetic_dm.val_dataloader()
    batches = list(loader)
    assert [len(x["label"]) for x in batches] == [14]
    images, labels = synthetic_dm.split_arrays("val")
    np.testing.assert_array_equal(batches[0]["image"][:, 0].numpy(), images)
    np.testing.assert_array_equal(batches[0]["label"].numpy(), labels)


def test_sampler_drop_last_and_seed():
    s = IndexBatchSampler(10, 4, shuffle=True, drop_last=False, seed=3)
    first = [b.tolist() for b in s]
    assert [len(b) for b in first] == [4, 4, 2] and sorted(functools.reduce(operator.iadd, first, [])) == list(range(10))
    s2 = IndexBatchSampler(10, 4, shuffle=True, drop_last=True, seed=3)
    assert [b.tolist() for b in s2] == first[:2]
    assert len(IndexBatchSampler(3, 4, drop_last=True)) == 1  # never drops everything


def imbalanced_raw(n_major: int = 900, n_minor: int = 100) -> RawData:
    labels = np.array([3] * n_major + [1] * n_minor)  # happy-heavy, little disgust, as in FER2013
    n = len(labels)
    images = (np.arange(n)[:, None, None] % 251).astype(np.uint8).repeat(48, 1).repeat(48, 2)
    usage = np.where(np.arange(n) % 10 == 0, "val", np.where(np.arange(n) % 10 == 1, "test", "train"))
    return RawData(images=images, labels=labels, usage=usage, ids=[f"r{i}" for i in range(n)], name="imb")


@pytest.mark.parametrize("power, expected_minor", [(0.0, 0.1), (0.5, 0.25), (1.0, 0.5)])
def test_balanced_sampler_draws_classes_by_power(power, expected_minor):
    """data.sampler=balanced: weight count^-power per row, so the minor class's share of the drawn
    rows is 10 % (power 0), 1/(1+3) = 25 % (power 0.5: 1/sqrt(800) vs 1/sqrt(80) per row), 50 % (power 1)."""
    dm = FERDataModule(imbalanced_raw(), batch_size=50, sampler="balanced", sampler_power=power, seed=7, augment=None)
    dm.setup()
    loader = dm.train_dataloader()
    drawn = []
    for epoch in range(3):  # as Lightning does: a new draw per epoch
        loader.sampler.set_epoch(epoch)
        drawn += [b["label"] for b in loader]
    drawn = torch.cat(drawn)
    minor = (drawn == dm.class_names.index("disgust")).float().mean().item()
    assert minor == pytest.approx(expected_minor, abs=0.03)
    assert len(drawn) == 3 * (800 // 50) * 50  # an epoch draws as many rows as the split has


def test_balanced_sampler_is_seeded_and_checks_its_options():
    weights = np.r_[np.ones(5), 10 * np.ones(5)]
    a = [b.tolist() for b in IndexBatchSampler(10, 5, shuffle=True, seed=1, weights=weights)]
    b = [b.tolist() for b in IndexBatchSampler(10, 5, shuffle=True, seed=1, weights=weights)]
    assert a == b and len({i for batch in a for i in batch}) < 10  # drawn with replacement
    with pytest.raises(ValueError, match=r"data\.sampler must be one of"):
        FERDataModule(imbalanced_raw(), sampler="oversample")
    with pytest.raises(ValueError, match=r"sampler_power must be in \[0, 1\]"):
        FERDataModule(imbalanced_raw(), sampler="balanced", sampler_power=2.0)
    with pytest.raises(ValueError, match="one per row"):
        IndexBatchSampler(10, 5, weights=np.ones(3))


def test_soft_batches():
    soft = np.full((6, 7), 1 / 7, np.float32)
    raw = RawData(
        images=np.arange(6, dtype=np.uint8)[:, None, None].repeat(48, 1).repeat(48, 2),  # distinct images
        labels=[0, 1, 2, 3, 4, 5],
        usage=["train"] * 4 + ["val"] * 2,
        ids=list("abcdef"),
        name="soft",
        soft=soft,
    )
    with pytest.warns(UserWarning, match="no test rows"):
        dm = FERDataModule(raw, batch_size=2)
        dm.setup()
    b = next(iter(dm.train_dataloader()))
    assert b["soft"].dtype == torch.float32 and b["soft"].shape == (2, 7)
    assert dm.soft_labels and dm.split_record["test_source"] == "source:val"  # the 2 val rows are reported as test


def test_after_transfer_augments_only_while_training(synthetic_dm):
    dm = synthetic_dm
    batch = next(iter(dm.val_dataloader()))
    ref = batch["image"].float()
    dm.trainer = None
    out = dm.on_after_batch_transfer({k: v.clone() for k, v in batch.items()}, 0)
    assert out["image"].dtype == torch.float32 and torch.equal(out["image"], ref)
    dm.trainer = SimpleNamespace(training=False)
    assert torch.equal(dm.on_after_batch_transfer({k: v.clone() for k, v in batch.items()}, 0)["image"], ref)
    dm.trainer = SimpleNamespace(training=True, global_step=0, global_rank=0)  # the step keys the augmentation seed
    aug = dm.on_after_batch_transfer({k: v.clone() for k, v in batch.items()}, 0)["image"]
    dm.trainer = None
    assert aug.shape == ref.shape and not torch.equal(aug, ref)
    assert aug.min() >= 0 and aug.max() <= 255


def test_batch_augment_shape_range_and_eval_identity():
    torch.manual_seed(0)
    x = torch.rand(32, 1, 48, 48) * 255
    aug = BatchAugment(flip_p=0.5, scale_p=1, rotate_p=1, shift_p=1, brightness_p=1, contrast_p=1, erase_p=1)
    y = aug(x)
    assert y.shape == x.shape and y.dtype == torch.float32
    assert y.min() >= 0 and y.max() <= 255 and not torch.equal(x, y)
    aug.eval()
    assert aug(x) is x
    u8 = (torch.rand(4, 1, 48, 48) * 255).to(torch.uint8)
    assert BatchAugment()(u8).dtype == torch.float32


def test_batch_augment_geometry_is_exact():
    x = torch.rand(8, 1, 48, 48) * 255
    flip = BatchAugment(flip_p=1.0, scale_p=0, shift_p=0, rotate_p=0, brightness_p=0, contrast_p=0, erase_p=0)
    torch.testing.assert_close(flip(x), torch.flip(x, dims=[-1]), atol=1e-3, rtol=0)
    none = BatchAugment(flip_p=0, scale_p=0, shift_p=0, rotate_p=0, brightness_p=0, contrast_p=0, erase_p=0)
    torch.testing.assert_close(none(x), x)
    # a seeded generator makes it reproducible
    a = BatchAugment()
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    torch.testing.assert_close(a(x, generator=g1), a(x, generator=g2))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_batch_augment_on_gpu():
    x = torch.rand(8, 1, 48, 48, device="cuda") * 255
    y = BatchAugment()(x)
    assert y.device == x.device and y.shape == x.shape


def test_datamodule_preprocessing_and_computed_norm():
    dm = FERDataModule(SyntheticFaces(n_per_class=10), input_size=64, in_chans=3, mean=None, std=None)
    dm.setup()
    p = dm.preprocessing
    train = dm.split_arrays("train")[0].astype(np.float64) / 255
    assert p["in_chans"] == 3 and p["input_size"] == 64 and len(p["mean"]) == 3
    assert abs(p["mean"][0] - train.mean()) < 1e-4 and abs(p["std"][0] - train.std()) < 1e-4
    out = Preprocess.from_dict(p)(torch.zeros(1, 1, 48, 48))
    assert out.shape == (1, 3, 64, 64)


def test_lightning_fit_smoke(tmp_path):
    import lightning.pytorch as pl

    class Tiny(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48 * 48, 7))
            self.seen = []

        def training_step(self, batch, _):
            assert batch["image"].dtype == torch.float32 and batch["image"].shape[1:] == (1, 48, 48)
            self.seen.append(self.trainer.training)
            return F.cross_entropy(self.net(batch["image"] / 255), batch["label"])

        def validation_step(self, batch, _):
            self.log(
                "val_loss",
                F.cross_entropy(self.net(batch["image"] / 255), batch["label"]),
                batch_size=len(batch["label"]),
            )

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    dm = FERDataModule(SyntheticFaces(n_per_class=10), batch_size=8, augment=BatchAugment())
    model = Tiny()
    trainer = pl.Trainer(
        max_steps=3,
        limit_val_batches=1,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, datamodule=dm)
    assert model.seen == [True] * 3
