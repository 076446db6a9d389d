import numpy as np

from ferops.data import RawData, prepare_dataset
from ferops.data.validation import duplicate_report, image_hashes


def planted():
    """12 distinct images plus planted copies: train/val, train/test, and a within-train conflict."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (12, 48, 48), dtype=np.uint8)
    usage = ["train"] * 8 + ["val"] * 2 + ["test"] * 2
    labels = [0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2]
    extra_images = [base[0], base[1], base[2], base[2]]
    extra_usage = ["val", "test", "train", "train"]
    extra_labels = [0, 1, 2, 1]  # the last copy of base[2] disagrees: conflicting labels in train
    images = np.concatenate([base, np.stack(extra_images)])
    ids = [f"img{i}" for i in range(16)]
    return RawData(images=images, labels=labels + extra_labels, usage=usage + extra_usage, ids=ids, name="dups")


def test_hashes_identify_identical_images():
    raw = planted()
    h = image_hashes(raw.images)
    assert h[0] == h[12] and h[2] == h[14] == h[15] and len(set(h.tolist())) == 12


def test_duplicate_report_counts():
    data = prepare_dataset(planted())
    dup = data.report["duplicates"]
    assert dup["n_groups"] == 3  # base[0], base[1], base[2]
    assert dup["n_rows_in_groups"] == 2 + 2 + 3
    assert dup["cross_split"] == {"train/val": 1, "train/test": 1, "val/test": 0}
    assert dup["within_split"] == {"train": 1, "val": 0, "test": 0}
    assert dup["conflicting_labels"] == {"train": 1, "val": 0, "test": 0}
    assert any("img2" in e and "img15" in e for e in map(" ".join, dup["conflict_examples"]))
    assert len(dup["examples"]) == 3
    assert dup["dropped_from_eval"] == {"val": 0, "test": 0}
    assert len(data.splits["val"]) == 3 and len(data.splits["test"]) == 3


def test_dedupe_drop_from_eval():
    data = prepare_dataset(planted(), dedupe="drop_from_eval")
    assert data.report["duplicates"]["dropped_from_eval"] == {"val": 1, "test": 1}
    assert "img12" not in data.splits["val"].ids.tolist() and "img13" not in data.splits["test"].ids.tolist()
    assert len(data.splits["val"]) == 2 and len(data.splits["test"]) == 2
    assert len(data.splits["train"]) == 10  # train is never touched
    assert data.fingerprint != prepare_dataset(planted()).fingerprint


def test_report_handles_generic_split_names():
    h = {"a": np.array(["x", "y"]), "b": np.array(["x"])}
    rep = duplicate_report(h, {"a": np.array([0, 1]), "b": np.array([0])}, {"a": np.array(["1", "2"]), "b": np.array(["3"])})
    assert rep["cross_split"] == {"a/b": 1} and rep["n_groups"] == 1
