"""Class sets of your own, end to end (issue 15): an image folder's own class names go through
training, the checkpoint, the export chain, the bundle (labels.txt, model_metadata.json), the
served pyfunc's ``prob_<class>`` columns and ``ferops predict``.

Two folders: AffectNet-style expressions with ``contempt`` and without ``neutral``, and three
classes that are not expressions at all (where a bright half sits), both trained with
``data.classes=from_folders`` on a few seconds of CPU."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pytest
from checkpoints import train_tiny_checkpoint
from PIL import Image

from confutil import TINY
from ferops.data import ImageFolder, prepare_dataset
from ferops.data.synthetic import generate
from fixtures_data import write_image_tree

skimage_data = pytest.importorskip("skimage.data")

# TINY without its synthetic-source setting: these runs read image folders
FOLDER_RUN = ["trainer=cpu", "data=image_folder", "data.classes=from_folders", "data.split.strategy=stratified"]
FOLDER_RUN += [o for o in TINY if not o.startswith("data.source.")]
EXPORT_CFG = {
    "n_calibration": 64,
    "n_latency_runs": 5,
    "n_latency_warmup": 1,
    "progress": False,
    "edgetpu_compiler": "off",
    "gates": {"enforce": False},  # a model trained for two batches: the labels are under test, not accuracy
}


def halves(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 [n, 48, 48] noise with a bright top, bottom or left half (classes 0, 1, 2)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    images = rng.normal(70, 20, (n, 48, 48))
    for k, region in enumerate([np.s_[:24, :], np.s_[24:, :], np.s_[:, :24]]):
        for i in np.flatnonzero(labels == k):
            images[i][region] += 110
    return np.clip(images, 0, 255).astype(np.uint8), labels


def train_and_export(tmp, root):
    """Checkpoint, its deployable model + meta, the bundle directory, the prepared splits."""
    from ferops.export import run_export
    from ferops.models.checkpoint import load_deployable

    ckpt = train_tiny_checkpoint(tmp, [f"data.path={root}", f"data.cache_dir={tmp / 'cache'}"], base=FOLDER_RUN)
    model, meta = load_deployable(ckpt)
    data = prepare_dataset(ImageFolder(root), split={"strategy": "stratified"}, classes="from_folders")
    train, test = data.splits["train"], data.splits["test"]
    report = run_export(model, meta, train.images, train.labels, test.images, test.labels, tmp / "export", EXPORT_CFG)
    return meta, Path(report["bundle_dir"]), data


def test_a_folder_with_contempt_and_without_neutral_trains_and_exports_its_labels(tmp_path):
    from ferops.runtime import BundleModel

    names = ["angry", "happy", "surprise", "disgust"]
    images, labels = generate(24, seed=5, class_names=names)
    folders = {"angry": "Anger", "happy": "Happiness", "surprise": "Surprise", "disgust": "Contempt"}
    layout = {f"{folders[names[c]]}/{k}.png": img for k, (img, c) in enumerate(zip(images, labels.tolist()))}
    root = write_image_tree(tmp_path / "affect", layout)

    meta, bundle_dir, data = train_and_export(tmp_path, root)
    expected = ["angry", "contempt", "happy", "surprise"]  # the folders, read as class names, sorted
    assert meta["class_names"] == expected == data.class_names
    assert meta["class_map"]["names"] == expected  # what the checkpoint records it applied
    bundle = BundleModel(bundle_dir)
    assert bundle.class_names == expected
    assert (bundle_dir / "labels.txt").read_text().split() == expected
    metadata = json.loads((bundle_dir / "model_metadata.json").read_text())
    assert metadata["class_names"] == expected and metadata["class_map"]["names"] == expected
    probs = bundle.predict_proba(data.splits["test"].images)
    assert probs.shape == (len(data.splits["test"]), 4)


def test_a_custom_three_class_folder_trains_exports_serves_and_predicts_with_its_labels(tmp_path, mlflow_store, capsys):
    from ferops.cli import main as cli
    from ferops.registry import pyfunc as P
    from ferops.runtime import BundleModel

    images, labels = halves(90, seed=1)
    names = ["top", "bottom", "left"]
    root = write_image_tree(tmp_path / "halves", {f"{names[c]}/{k}.png": img for k, (img, c) in enumerate(zip(images, labels))})

    meta, bundle_dir, data = train_and_export(tmp_path, root)
    expected = ["bottom", "left", "top"]
    assert meta["class_names"] == expected and BundleModel(bundle_dir).class_names == expected

    # served: the pyfunc's columns are the bundle's classes
    with mlflow.start_run():
        info = P.log_pyfunc(bundle_dir)
    served = mlflow.pyfunc.load_model(info.model_uri)
    frame = served.predict(P.encode_images(data.splits["test"].images[:6]), params={"detect": False})
    assert [c for c in frame.columns if c.startswith(P.PROB_PREFIX)] == [f"prob_{c}" for c in expected]
    assert set(frame["label"]) <= set(expected) and len(frame) == 6
    signature = [c["name"] for c in json.loads(info.signature.to_dict()["outputs"])]
    assert "prob_top" in signature and "prob_neutral" not in signature

    # ferops predict: the photo's face is classified into the folder's classes
    photo = tmp_path / "astronaut.jpg"
    Image.fromarray(skimage_data.astronaut()).save(photo, quality=92)
    assert cli(["predict", str(photo), "--model", str(bundle_dir)]) == 0
    (record,) = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    (face,) = record["faces"]
    assert sorted(face["probs"]) == expected and face["label"] in expected
