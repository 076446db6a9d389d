import numpy as np
import pytest

from ferops.data import ClassMap, DataValidationError, ImageFolder, prepare_dataset
from fixtures_data import pixels_of


def test_split_layout_values(image_tree):
    rgb = np.zeros((96, 96, 3), np.uint8)
    rgb[...] = (100, 150, 200)
    root = image_tree(
        {
            "train/Happy/a.png": pixels_of(1),
            "train/happy/b.jpg": rgb,  # jpeg of a flat colour stays flat
            "train/angry/c.png": pixels_of(2),
            "test/NEUTRAL/d.png": pixels_of(3),
            "train/angry/.DS_Store": b"junk",  # hidden files are ignored
        }
    )
    raw = ImageFolder(root).load()
    assert raw.images.shape == (4, 48, 48) and raw.images.dtype == np.uint8
    by_name = {p.split("/")[-1]: i for i, p in enumerate(raw.ids)}
    np.testing.assert_array_equal(raw.images[by_name["a.png"]], pixels_of(1))
    np.testing.assert_array_equal(raw.images[by_name["c.png"]], pixels_of(2))
    # PIL "L" conversion of (100, 150, 200) is 141; resizing a flat image keeps it flat
    assert np.abs(raw.images[by_name["b.jpg"]].astype(int) - 141).max() <= 1
    # the folder names are the source's classes: lower-case, sorted, "Happy" and "happy" one class
    assert raw.class_names == ("angry", "happy", "neutral")
    label = {f: raw.class_names[raw.labels[i]] for f, i in by_name.items()}
    assert label == {"a.png": "happy", "b.jpg": "happy", "c.png": "angry", "d.png": "neutral"}
    assert raw.usage[by_name["d.png"]] == "test" and raw.usage[by_name["a.png"]] == "train"
    assert raw.ids[by_name["d.png"]] == str(root / "test" / "NEUTRAL" / "d.png")


def test_generic_layout_is_all_train_and_gets_split_later(image_tree):
    layout = {f"{c}/{k}.png": pixels_of(10 * i + k) for i, c in enumerate(["sad", "surprise"]) for k in range(10)}
    raw = ImageFolder(image_tree(layout)).load()
    assert set(raw.usage.tolist()) == {"train"} and raw.class_names == ("sad", "surprise")
    split = {"strategy": "stratified", "fractions": [0.6, 0.2, 0.2], "seed": 1}
    data = prepare_dataset(raw, split=split, classes="from_folders")
    assert [len(data.splits[s]) for s in ("train", "val", "test")] == [12, 4, 4]


def test_train_test_folders_get_val_carved_from_train(image_tree):
    layout = {f"train/{c}/{k}.png": pixels_of(10 * i + k) for i, c in enumerate(["fear", "happy"]) for k in range(10)}
    layout.update({"test/fear/t.png": pixels_of(99), "test/happy/t.png": pixels_of(98)})
    with pytest.warns(UserWarning, match="carved a stratified 10% of train as val"):
        data = prepare_dataset(
            ImageFolder(image_tree(layout)), split={"strategy": "official", "val_fraction": 0.1}, classes="from_folders"
        )
    assert len(data.splits["val"]) == 2 and sorted(data.splits["val"].labels.tolist()) == [0, 1]
    assert len(data.splits["train"]) == 18 and len(data.splits["test"]) == 2
    assert data.split_record["test_source"] == "source:test" and data.split_record["val_source"].startswith("carved:train")


@pytest.mark.parametrize(
    "layout, where, reason",
    [
        ({"happy/a.png": pixels_of(1), "sad": None}, "sad", "empty class folder"),
        (
            {"happy/a.png": pixels_of(1), "happy/broken.png": b"\x89PNG\r\n\x1a\nnot really"},
            "happy/broken.png",
            "unreadable image",
        ),
        ({"happy/a.png": pixels_of(1), "happy/empty.jpg": b""}, "happy/empty.jpg", "unreadable image"),
        ({"happy/a.png": pixels_of(1), "happy/notes.txt": b"hello"}, "happy/notes.txt", "not an image file"),
        (
            {"train/happy/a.png": pixels_of(1), "holdout/happy/b.png": pixels_of(2)},
            "holdout",
            "unknown split folder 'holdout'",
        ),
    ],
)
def test_bad_inputs_raise_with_path_and_reason(image_tree, layout, where, reason):
    root = image_tree(layout)
    with pytest.raises(DataValidationError) as err:
        ImageFolder(root).load()
    msg = str(err.value)
    assert str(root) in msg and "1 bad row" in msg
    assert f"{root / where}: {reason}" in msg


def test_skip_quarantines_bad_images(image_tree, tmp_path):
    root = image_tree(
        {
            "happy/a.png": pixels_of(1),
            "happy/bad.png": b"garbage",
            "sad/b.png": pixels_of(2),
            "sad/c.png": pixels_of(3),
            "sad/d.txt": b"notes",
        }
    )
    raw = ImageFolder(root, on_bad_rows="skip").load()
    assert len(raw) == 3
    assert sorted(q.path for q in raw.quarantine) == [str(root / "happy" / "bad.png"), str(root / "sad" / "d.txt")]


def test_empty_root(tmp_path):
    (tmp_path / "nothing").mkdir()
    with pytest.raises(DataValidationError, match="no class folders found"):
        ImageFolder(tmp_path / "nothing").load()


def test_image_folder_cache(image_tree, tmp_path, monkeypatch):
    root = image_tree({"happy/a.png": pixels_of(1), "sad/b.png": pixels_of(2)})
    cache = tmp_path / "cache"
    first = ImageFolder(root, cache_dir=cache).load()
    monkeypatch.setattr(ImageFolder, "decode", lambda self: (_ for _ in ()).throw(AssertionError("decoded")))
    assert ImageFolder(root, cache_dir=cache).load().fingerprint == first.fingerprint
    image_tree({"sad/c.png": pixels_of(3)})  # a new file changes the key
    with pytest.raises(AssertionError, match="decoded"):
        ImageFolder(root, cache_dir=cache).load()


def test_class_folders_outside_the_class_map_are_dropped_and_counted(image_tree):
    """Any folder name is a class of the source; the class map decides what the task keeps (a
    typo'd folder such as 'joy' shows up in the data report's dropped classes, it does not vanish)."""
    layout = {f"{c}/{k}.png": pixels_of(10 * i + k) for i, c in enumerate(["happiness", "anger", "joy"]) for k in range(5)}
    data = prepare_dataset(ImageFolder(image_tree(layout)), ClassMap(["angry", "happy"]), split={"strategy": "stratified"})
    assert data.class_names == ["angry", "happy"] and data.report["rows"] == {"source": 15, "after_class_map": 10}
    assert data.report["source_stats"]["class_map_dropped_classes"] == {"joy": 5}
    with pytest.raises(ValueError, match=r"classes \['sad'\] match no class of faces .*data.classes=from_folders"):
        prepare_dataset(ImageFolder(image_tree(layout, "faces")), ClassMap(["angry", "sad"]))


def test_classes_from_folders_keeps_every_folder_sorted(image_tree):
    layout = {f"{c}/{k}.png": pixels_of(10 * i + k) for i, c in enumerate(["Square", "circle", "stripes"]) for k in range(10)}
    data = prepare_dataset(ImageFolder(image_tree(layout)), split={"strategy": "stratified", "seed": 0}, classes="from_folders")
    assert data.class_names == ["circle", "square", "stripes"]
    assert data.report["class_set"]["names"] == ["circle", "square", "stripes"]
    assert data.class_map.names == data.class_names and data.report["counts"]["train"]["total"] == 24
    with pytest.raises(ValueError, match=r"data\.classes must be"):
        prepare_dataset(ImageFolder(image_tree(layout, "other")), classes="folders")
