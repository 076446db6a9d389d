"""`python -m ferops.evaluate` on every kind of model: the deployed int8 bundle (the shipped one,
a real FER2013 model) scored as the runtime runs it, temperature included."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from ferops.data import ClassMap
from ferops.evaluate import main as evaluate_main
from ferops.evaluation.external import bundle_in_pyfunc, evaluate_model, load_external, open_model
from ferops.runtime import SHIPPED_BUNDLE, BundleModel
from fixtures_data import write_fer2013_csv

SPECS = [(label, usage, 100 + 7 * i + label) for i, usage in enumerate(["PrivateTest", "PublicTest"] * 3) for label in range(7)]


@pytest.fixture
def csv_path(tmp_path):
    return write_fer2013_csv(tmp_path / "external.csv", SPECS)


def test_bundle_report_is_the_runtime_on_those_rows(csv_path, tmp_path, capsys):
    out = tmp_path / "report"
    evaluate_main([str(SHIPPED_BUNDLE), str(csv_path), "--usage", "PrivateTest", "--out", str(out)])
    printed = json.loads(capsys.readouterr().out.split("report:")[0])
    assert printed["model"]["kind"] == "bundle"

    images, labels = load_external(csv_path, ClassMap(BundleModel(SHIPPED_BUNDLE).class_names), "PrivateTest")
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

    meta["class_map"] = None  # no recorded map, and names that are not FER names: a clear refusal
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="cannot map FER labels onto the bundle's classes"):
        evaluate_model(bundle, csv_path, tmp_path / "r2")


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
    images, labels = load_external(csv_path, ClassMap(["happy", "sad"]), "PublicTest")
    assert images.shape == (6, 48, 48) and sorted(np.unique(labels).tolist()) == [0, 1]
