"""`python -m ferops.evaluate` on every kind of model: the deployed int8 bundle (the shipped one,
a real FER2013 model) scored as the runtime runs it, temperature included."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from sklearn.metrics import f1_score

from ferops.data import ClassMap
from ferops.data.synthetic import generate
from ferops.evaluate import main as evaluate_main
from ferops.evaluation.external import bundle_in_pyfunc, evaluate_model, load_external, open_model
from ferops.runtime import SHIPPED_BUNDLE, BundleModel
from fixtures_data import pixels_of, write_fer2013_csv, write_image_tree

SPECS = [(label, usage, 100 + 7 * i + label) for i, usage in enumerate(["PrivateTest", "PublicTest"] * 3) for label in range(7)]


@pytest.fixture
def csv_path(tmp_path):
    return write_fer2013_csv(tmp_path / "external.csv", SPECS)


def test_bundle_report_is_the_runtime_on_those_rows(csv_path, tmp_path, capsys):
    out = tmp_path / "report"
    evaluate_main([str(SHIPPED_BUNDLE), str(csv_path), "--usage", "PrivateTest", "--out", str(out)])
    printed = json.loads(capsys.readouterr().out.split("report:")[0])
    assert printed["model"]["kind"] == "bundle"

    external = load_external(csv_path, ClassMap(BundleModel(SHIPPED_BUNDLE).class_names), "PrivateTest")
    images, labels = external.images, external.labels
    assert len(labels) == 21
    bundle = BundleModel(SHIPPED_BUNDLE)
    expected = (bundle.predict_proba(images).argmax(1) == labels).mean()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_samples"] == 21 and metrics["accuracy"] == pytest.approx(expected)
    # the shipped bundle's temperature (fitted on val) is applied, and the report shows T = 1 beside it
    assert bundle.temperature != 1.0 and "ece_uncalibrated" in metrics
    for name in ("confusion_matrix.png", "reliability.png", "mistakes.png", "reliability_before.json"):
        assert (out / name).is_file(), name


def test_bundle_with_a_recorded_class_map_scores_merged_classes(csv_path, tmp_path):
    """A bundle trained on merged classes records its FER mapping; evaluation maps FER labels with it."""
    bundle = shutil.copytree(SHIPPED_BUNDLE, tmp_path / "bundle")
    meta_path = bundle / "model_metadata.json"
    meta = json.loads(meta_path.read_text())
    # the same 7 outputs under names that are not FER names: only the recorded map relates them to the data
    names = ["angry", "disgust", "low", "happy", "sad2", "surprise", "neutral"]
    mapping = {"angry": "angry", "disgust": "disgust", "fear": "low", "happy": "happy", "sad": "sad2"}
    mapping |= {"surprise": "surprise", "neutral": "neutral"}
    meta["class_names"], meta["class_map"] = names, {"name": "renamed", "names": names, "mapping": mapping}
    meta_path.write_text(json.dumps(meta))
    (bundle / "labels.txt").write_text("\n".join(names) + "\n")
    result = evaluate_model(bundle, csv_path, tmp_path / "r")
    assert result["metrics"]["n_samples"] == len(SPECS)
    assert "recall/low" in result["metrics"]

    meta["class_map"] = None  # no recorded map: the bundle's names meet the data's by name
    meta_path.write_text(json.dumps(meta))
    sets = evaluate_model(bundle, csv_path, tmp_path / "r2")["class_sets"]
    assert sets["model_only"] == ["low", "sad2"] and sets["data_only"] == {"fear": 6, "sad": 6}
    assert sets["shared"] == ["angry", "disgust", "happy", "surprise", "neutral"] and sets["images_dropped"] == 12


def test_pyfunc_model_directory_must_keep_its_bundle_inside(tmp_path):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "MLmodel").write_text("flavors:\n  python_function:\n    artifacts:\n      bundle:\n        path: ../../etc\n")
    with pytest.raises(ValueError, match="leaves the model directory"):
        bundle_in_pyfunc(model_dir)
    (model_dir / "MLmodel").write_text("flavors: {}\n")
    with pytest.raises(ValueError, match="not a ferops pyfunc model"):
        open_model(model_dir)
    with pytest.raises(FileNotFoundError, match="not found"):
        open_model(tmp_path / "nothing.ckpt")


def test_unmapped_rows_are_left_out_with_usage_filter(csv_path):
    external = load_external(csv_path, ClassMap(["happy", "sad"]), "PublicTest")
    assert external.images.shape == (6, 48, 48) and sorted(np.unique(external.labels).tolist()) == [0, 1]
    assert external.data_only == {c: 3 for c in ("angry", "disgust", "fear", "surprise", "neutral")}


@pytest.fixture
def folder_without_neutral(tmp_path):
    """An AffectNet-style folder: angry, happy, surprise and contempt (no neutral, no FER2013 spelling
    for happy), 12 synthetic faces each; contempt shows disgust faces (the closest FER-7 class)."""
    names = ["angry", "happy", "surprise", "disgust"]
    images, labels = generate(12, seed=3, class_names=names)
    folders = {"angry": "Anger", "happy": "Happiness", "surprise": "Surprise", "disgust": "Contempt"}
    layout = {f"{folders[names[c]]}/{k}.png": img for k, (img, c) in enumerate(zip(images, labels.tolist()))}
    return write_image_tree(tmp_path / "affect", layout)


def test_a_set_without_neutral_and_with_contempt_scores_the_shared_classes(folder_without_neutral, tmp_path, capsys):
    """Issue 12 part 5: only the classes both sides share are scored, the rest is reported: the
    set's extra class (images removed), the model's classes the set lacks (their predictions are
    errors, counted apart), macro-F1 over the shared classes."""
    bundle = BundleModel(SHIPPED_BUNDLE)
    out = tmp_path / "report"
    evaluate_main([str(SHIPPED_BUNDLE), str(folder_without_neutral), "--out", str(out)])
    printed = json.loads(capsys.readouterr().out.split("report:")[0])
    sets = json.loads((out / "class_sets.json").read_text())
    assert printed["classes"]["shared"] == sets["shared"] == ["angry", "happy", "surprise"]
    assert sets["data_classes"] == ["angry", "contempt", "happy", "surprise"]  # folder names read as FER names
    assert sets["data_only"] == {"contempt": 12} and sets["images_dropped"] == 12
    assert sets["model_only"] == ["disgust", "fear", "sad", "neutral"]

    # the numbers are the runtime's on the 36 shared faces, in the model's class ids
    external = load_external(folder_without_neutral, ClassMap(bundle.class_names))
    assert len(external.labels) == 36
    pred = bundle.predict_proba(external.images).argmax(1)
    shared_ids = [bundle.class_names.index(c) for c in ("angry", "happy", "surprise")]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_samples"] == 36 and metrics["accuracy"] == pytest.approx((pred == external.labels).mean())
    absent = {c: int((pred == bundle.class_names.index(c)).sum()) for c in sets["model_only"]}
    assert sets["predicted_model_only"] == absent
    assert sets["macro_f1_shared"] == pytest.approx(f1_score(external.labels, pred, labels=shared_ids, average="macro"))
    assert printed["macro_f1_shared"] == pytest.approx(sets["macro_f1_shared"], abs=1e-4)

    # --class-map sends the extra class onto a model class: it is scored, and nothing is dropped
    mapped = evaluate_model(SHIPPED_BUNDLE, folder_without_neutral, tmp_path / "mapped", class_map="contempt=disgust")
    assert mapped["class_sets"]["data_only"] == {} and mapped["metrics"]["n_samples"] == 48
    assert mapped["class_sets"]["shared"] == ["angry", "disgust", "happy", "surprise"]
    with pytest.raises(ValueError, match="is not in names"):
        evaluate_model(SHIPPED_BUNDLE, folder_without_neutral, tmp_path / "bad", class_map="contempt=smirk")
    with pytest.raises(ValueError, match="is not SRC=DST"):
        evaluate_model(SHIPPED_BUNDLE, folder_without_neutral, tmp_path / "bad", class_map="contempt")


def test_a_set_sharing_no_class_is_refused(tmp_path):
    layout = {f"{c}/{k}.png": pixels_of(10 * i + k) for i, c in enumerate(["cat", "dog"]) for k in range(3)}
    with pytest.raises(ValueError, match=r"none of its classes \['cat', 'dog'\] is a class of the model"):
        evaluate_model(SHIPPED_BUNDLE, write_image_tree(tmp_path / "pets", layout), tmp_path / "r")
