import numpy as np
import pytest

from ferops.data import RawData, SplitWarning, assign_splits, calibration_subset, prepare_dataset
from ferops.data.splits import calibration_indices, stratified_split


def make_raw(usage, labels=None):
    n = len(usage)
    labels = np.arange(n) % 3 if labels is None else np.asarray(labels)
    images = np.random.default_rng(0).integers(0, 256, (n, 48, 48), dtype=np.uint8)
    return RawData(images=images, labels=labels, usage=usage, ids=[f"r{i}" for i in range(n)], name="tiny")


def test_official_keeps_usage():
    raw = make_raw(["train"] * 6 + ["val"] * 3 + ["test"] * 3)
    res = assign_splits(raw, "official")
    assert res.indices["train"].tolist() == list(range(6))
    assert res.indices["val"].tolist() == [6, 7, 8] and res.indices["test"].tolist() == [9, 10, 11]
    assert res.notes == [] and res.sources == {"train": "source:train", "val": "source:val", "test": "source:test"}


def test_stratified_fractions_per_class_and_seeded():
    labels = np.repeat([0, 1, 2], [50, 30, 20])
    raw = make_raw(["train"] * 100, labels)
    res = assign_splits(raw, "stratified", fractions=[0.8, 0.1, 0.1], seed=7)
    for split, want in {"train": [40, 24, 16], "val": [5, 3, 2], "test": [5, 3, 2]}.items():
        assert np.bincount(labels[res.indices[split]], minlength=3).tolist() == want
    all_idx = np.concatenate(list(res.indices.values()))
    assert sorted(all_idx.tolist()) == list(range(100))  # a partition
    again = assign_splits(raw, "stratified", fractions=[0.8, 0.1, 0.1], seed=7)
    other = assign_splits(raw, "stratified", fractions=[0.8, 0.1, 0.1], seed=8)
    assert again.indices["val"].tolist() == res.indices["val"].tolist()
    assert other.indices["val"].tolist() != res.indices["val"].tolist()


def test_missing_test_reports_the_second_split_and_carves_val_from_train():
    # e.g. FER2013 without PrivateTest. The old rule made test = val (PublicTest), so the numbers
    # that picked the checkpoint were the numbers reported; now nothing selects on test.
    raw = make_raw(["train"] * 30 + ["val"] * 3, labels=np.concatenate([np.arange(30) % 3, [0, 1, 2]]))
    with pytest.warns(SplitWarning, match="no test rows; the source's val rows are the test split.*PublicTest"):
        res = assign_splits(raw, "official", val_fraction=0.1, seed=0)
    assert res.indices["test"].tolist() == [30, 31, 32]
    assert set(res.indices["val"]) <= set(range(30)) and np.bincount(raw.labels[res.indices["val"]]).tolist() == [1, 1, 1]
    assert not set(res.indices["val"]) & set(res.indices["test"]) and not set(res.indices["val"]) & set(res.indices["train"])
    assert res.sources["test"] == "source:val" and res.sources["val"] == "carved:train(0.1,seed=0)"
    with pytest.warns(SplitWarning):
        data = prepare_dataset(raw, split={"val_fraction": 0.1, "seed": 0})
    assert "no test rows" in data.report["split"]["notes"][0]
    assert data.report["counts"]["test"]["total"] == 3 and data.report["counts"]["val"]["total"] == 3
    rec = data.split_record
    assert rec["val_source"] == "carved:train(0.1,seed=0)" and rec["test_source"] == "source:val"
    assert (rec["train_count"], rec["val_count"], rec["test_count"]) == (27, 3, 3)
    assert rec["val_digest"] != rec["test_digest"] and data.report["split"]["record"] == rec


def test_carved_val_keeps_duplicate_groups_on_one_side():
    # 20 groups of 3 byte-identical images each (FER2013 has such groups inside Training)
    rng = np.random.default_rng(1)
    base = rng.integers(0, 256, (22, 48, 48), dtype=np.uint8)
    images = np.concatenate([np.repeat(base[:20], 3, axis=0), base[20:]])
    labels = np.concatenate([np.repeat(np.arange(20) % 2, 3), [0, 1]])
    usage = ["train"] * 60 + ["test"] * 2
    raw = RawData(images=images, labels=labels, usage=usage, ids=[f"r{i}" for i in range(62)], name="dups")
    hashes = np.concatenate([np.repeat(np.arange(20), 3), [20, 21]])
    res = assign_splits(raw, "official", val_fraction=0.2, seed=5, groups=hashes)
    train_groups, val_groups = set(hashes[res.indices["train"]]), set(hashes[res.indices["val"]])
    assert val_groups and not train_groups & val_groups
    assert len(res.indices["val"]) == 12 and np.bincount(labels[res.indices["val"]]).tolist() == [6, 6]
    # through prepare_dataset the groups come from the image bytes
    with pytest.warns(SplitWarning):
        data = prepare_dataset(raw, split={"val_fraction": 0.2, "seed": 5})
    assert data.report["duplicates"]["cross_split"]["train/val"] == 0
    # without groups, a plain stratified carve splits most groups (what the old code did)
    plain = assign_splits(raw, "official", val_fraction=0.2, seed=5)
    assert set(hashes[plain.indices["train"]]) & set(hashes[plain.indices["val"]])


def test_only_train_rows_carve_val_and_test():
    raw = make_raw(["train"] * 60)
    with pytest.warns(SplitWarning):
        res = assign_splits(raw, "official", val_fraction=0.1, seed=0)
    sizes = [len(res.indices[s]) for s in ("train", "val", "test")]
    assert sum(sizes) == 60 and min(sizes) > 0
    assert len(set(np.concatenate(list(res.indices.values())).tolist())) == 60


def test_missing_val_is_carved_from_train():
    labels = np.repeat([0, 1], 20)
    raw = make_raw(["train"] * 40 + ["test"] * 4, np.concatenate([labels, [0, 1, 0, 1]]))
    with pytest.warns(SplitWarning, match="carved a stratified 10% of train as val"):
        res = assign_splits(raw, "official", val_fraction=0.1, seed=3)
    assert np.bincount(raw.labels[res.indices["val"]]).tolist() == [2, 2]
    assert len(res.indices["train"]) == 36 and not set(res.indices["train"]) & set(res.indices["val"])
    assert res.indices["test"].tolist() == [40, 41, 42, 43]


def test_no_train_rows_is_a_clear_error():
    raw = make_raw(["val"] * 3 + ["test"] * 3)
    with pytest.raises(ValueError, match=r"no train rows .*split\.strategy=stratified"):
        assign_splits(raw, "official")
    with pytest.raises(ValueError, match=r"split\.strategy must be one of"):
        assign_splits(raw, "random")


def test_stratified_split_small_classes_go_to_train():
    parts = stratified_split(np.array([0, 1, 1, 2, 2, 2]), [0.8, 0.1, 0.1], seed=0)
    assert sorted(np.concatenate(parts).tolist()) == list(range(6))
    assert 0 in parts[0].tolist()


def test_calibration_subset_stratified():
    labels = np.repeat(np.arange(4), [100, 50, 40, 10])
    images = np.arange(200, dtype=np.uint8)[:, None, None].repeat(48, 1).repeat(48, 2)
    imgs, labs = calibration_subset(images, labels, n=20, seed=0)
    assert len(labs) == 20 and np.bincount(labs).tolist() == [10, 5, 4, 1]
    assert imgs.shape == (20, 48, 48)
    np.testing.assert_array_equal(labels[imgs[:, 0, 0]], labs)  # images and labels stay paired
    assert calibration_indices(labels, 20, seed=0).tolist() == calibration_indices(labels, 20, seed=0).tolist()
    # a rare class still gets one sample when n is small
    assert sorted(set(calibration_subset(images, labels, n=4, seed=1)[1].tolist())) == [0, 1, 2, 3]
    assert len(calibration_subset(images, labels, n=500)[1]) == 200
