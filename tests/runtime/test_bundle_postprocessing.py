"""The bundle's post-processing (ferops.runtime.bundle): the temperature in model_metadata.json changes
the probabilities, never the labels; the unknown threshold relabels rows only when asked and leaves
the probabilities raw; bundles without the keys behave as before; bad values fail on load, naming
the file and the key."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ferops.runtime.bundle import (
    METADATA_FILE,
    UNKNOWN_LABEL,
    BundleError,
    BundleModel,
    average_views,
    calibrated_probs,
    log_scores,
    softmax,
)

MAKE_BUNDLE = Path(__file__).resolve().parents[1] / "registry" / "make_bundle.py"


@pytest.fixture(scope="module")
def base_bundle(tmp_path_factory) -> Path:
    """A real full-int8 bundle (softmax in the model), built by the registry tests' builder in its own process."""
    root = tmp_path_factory.mktemp("pp")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(
        [sys.executable, str(MAKE_BUNDLE), str(root / "bundle")], capture_output=True, text=True, timeout=300, env=env
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return root / "bundle"


@pytest.fixture(scope="module")
def images(base_bundle) -> np.ndarray:
    return np.load(base_bundle.parent / "images.npy")


def variant(base: Path, dest: Path, **changes) -> Path:
    """A copy of ``base`` with top-level metadata keys set (``None``: removed)."""
    shutil.copytree(base, dest)
    meta = json.loads((dest / METADATA_FILE).read_text())
    for key, value in changes.items():
        if value is None:
            meta.pop(key, None)
        else:
            meta[key] = value
    (dest / METADATA_FILE).write_text(json.dumps(meta))
    return dest


@pytest.mark.parametrize("softmax_in_model", [True, False])
def test_temperature_changes_probabilities_not_labels(base_bundle, images, tmp_path, softmax_in_model):
    # softmax_in_model false reads the same outputs as logits: both paths of step 2
    plain = BundleModel(variant(base_bundle, tmp_path / "plain", softmax_in_model=softmax_in_model))
    scaled = BundleModel(variant(base_bundle, tmp_path / "t", softmax_in_model=softmax_in_model, temperature=2.5))
    assert plain.temperature == 1.0 and scaled.temperature == 2.5
    p1, l1 = plain.predict(images)
    p2, l2 = scaled.predict(images)
    assert l1 == l2 and len(set(l1)) > 1
    np.testing.assert_allclose(p2.sum(1), 1.0, atol=1e-5)
    assert np.abs(p1 - p2).max() > 0.01
    assert p2.max(1).mean() < p1.max(1).mean()  # T > 1 softens
    outputs = scaled.predict_logits(images)
    np.testing.assert_allclose(p2, calibrated_probs(outputs, 2.5, softmax_in_model), atol=1e-6)
    if not softmax_in_model:
        np.testing.assert_allclose(p2, softmax(outputs / 2.5), atol=1e-6)


def test_bundle_without_the_keys_behaves_as_before(base_bundle, images, tmp_path):
    model = BundleModel(variant(base_bundle, tmp_path / "old", temperature=None, unknown=None))
    assert model.temperature == 1.0 and model.unknown_threshold is None and model.reject_unknown is False
    probs, labels = model.predict(images)
    np.testing.assert_array_equal(probs, model.predict_logits(images))  # the model's own softmax, untouched
    assert labels == [model.class_names[i] for i in probs.argmax(1)]
    with pytest.raises(BundleError, match="no unknown threshold"):
        model.predict(images, reject_unknown=True)
    with pytest.raises(BundleError, match="no unknown threshold"):
        BundleModel(model.bundle_dir, reject_unknown=True)


def test_reject_unknown_labels_rows_below_the_threshold(base_bundle, images, tmp_path):
    probe = BundleModel(base_bundle)
    conf = probe.predict(images)[0].max(1)
    threshold = float(np.median(conf))
    assert conf.min() < threshold < conf.max()
    model = BundleModel(variant(base_bundle, tmp_path / "u", unknown={"threshold": threshold, "enabled": False}))
    probs, labels = model.predict(images)  # off unless asked
    assert UNKNOWN_LABEL not in labels
    probs_r, labels_r = model.predict(images, reject_unknown=True)
    np.testing.assert_array_equal(probs_r, probs)  # raw probabilities, always
    expected = [UNKNOWN_LABEL if c < threshold else lab for c, lab in zip(probs.max(1), labels, strict=True)]
    assert labels_r == expected and 0 < labels_r.count(UNKNOWN_LABEL) < len(labels_r)
    # the metadata's default, and the constructor and call overrides
    enabled = variant(base_bundle, tmp_path / "on", unknown={"threshold": threshold, "enabled": True})
    assert BundleModel(enabled).predict(images)[1] == expected
    assert BundleModel(enabled).predict(images, reject_unknown=False)[1] == labels
    assert BundleModel(enabled, reject_unknown=False).predict(images)[1] == labels
    assert BundleModel(enabled, unknown_threshold=0.0).predict(images)[1] == labels  # nothing is below 0
    assert BundleModel(enabled).predict_faces(list(images), reject_unknown=False)[1] == labels


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"temperature": "1.5"}, "temperature"),
        ({"temperature": True}, "temperature"),
        ({"temperature": -1.0}, "temperature"),
        ({"temperature": 0}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"unknown": [0.5]}, "unknown"),
        ({"unknown": {"threshold": 1.5}}, "unknown.threshold"),
        ({"unknown": {"threshold": "high"}}, "unknown.threshold"),
        ({"unknown": {"threshold": 0.5, "enabled": "yes"}}, "unknown.enabled"),
        ({"tta": "ten-crop"}, "tta"),
        ({"tta": ["hflip"]}, "tta"),
    ],
)
def test_bad_postprocessing_metadata_names_the_file_and_key(base_bundle, tmp_path, changes, key):
    bad = variant(base_bundle, tmp_path / "bad", **changes)
    with pytest.raises(BundleError) as err:
        BundleModel(bad)
    assert str(bad / METADATA_FILE) in str(err.value) and f": {key} " in str(err.value)


def test_unknown_threshold_argument_is_checked(base_bundle):
    with pytest.raises(BundleError, match="unknown_threshold argument"):
        BundleModel(base_bundle, unknown_threshold=2.0)


def test_write_bundle_records_postprocessing_and_refuses_other_keys(base_bundle, tmp_path):
    from ferops.export.bundle import write_bundle

    names = BundleModel(base_bundle).class_names
    post = {"temperature": 1.7, "unknown": {"threshold": 0.4, "enabled": True, "policy": "target_accuracy"}}
    out = write_bundle(tmp_path / "w", base_bundle / "model_int8.tflite", names, softmax_in_model=True, postprocessing=post)
    model = BundleModel(out)
    assert model.temperature == 1.7 and model.unknown_threshold == 0.4 and model.reject_unknown is True
    assert model.metadata["format"] == "ferops-bundle"
    with pytest.raises(ValueError, match="format"):
        write_bundle(tmp_path / "x", base_bundle / "model_int8.tflite", names, postprocessing={"format": "mine"})
    with pytest.raises(BundleError, match="temperature"):  # the runtime's check runs on what was written
        write_bundle(tmp_path / "y", base_bundle / "model_int8.tflite", names, postprocessing={"temperature": -2})


@pytest.mark.parametrize("softmax_in_model", [True, False])
def test_hflip_tta_averages_the_crop_and_its_mirror(base_bundle, images, tmp_path, softmax_in_model):
    """Step 1: tta "hflip" (metadata or argument) = the mean of the two views' scores, before the
    temperature; "none" (absent: older bundles) is the single view."""
    plain = BundleModel(variant(base_bundle, tmp_path / "plain", softmax_in_model=softmax_in_model, temperature=1.7))
    flip = BundleModel(variant(base_bundle, tmp_path / "flip", softmax_in_model=softmax_in_model, temperature=1.7, tta="hflip"))
    assert plain.tta == "none" and flip.tta == "hflip" and BundleModel(plain.bundle_dir, tta="hflip").tta == "hflip"
    one, mirrored = plain.predict_logits(images), plain.predict_logits(images[:, :, ::-1].copy())
    assert not np.allclose(one, mirrored), "fixture images should not be mirror-symmetric"
    mean = (log_scores(one, softmax_in_model) + log_scores(mirrored, softmax_in_model)) / 2
    np.testing.assert_allclose(flip.predict_proba(images), softmax(mean / 1.7), atol=1e-5)
    np.testing.assert_allclose(plain.predict_proba(images), calibrated_probs(one, 1.7, softmax_in_model), atol=1e-6)
    np.testing.assert_allclose(flip.predict_proba(images[..., None]), flip.predict_proba(images), atol=1e-6)  # [N,H,W,1]
    symmetric = np.ascontiguousarray(np.concatenate([images[:, :, :24], images[:, :, :24][:, :, ::-1]], axis=2))
    np.testing.assert_allclose(flip.predict_proba(symmetric), plain.predict_proba(symmetric), atol=1e-5)


def test_average_views_of_probabilities_is_a_normalised_geometric_mean():
    p = np.array([[0.7, 0.2, 0.1]], np.float32)
    q = np.array([[0.1, 0.2, 0.7]], np.float32)
    avg = average_views([p, q], outputs_are_probs=True)
    expected = np.sqrt(p * q) / np.sqrt(p * q).sum()
    np.testing.assert_allclose(avg, expected, atol=1e-6)
    np.testing.assert_allclose(average_views([p], outputs_are_probs=True), p)
    np.testing.assert_allclose(average_views([np.log(p), np.log(q)]), (np.log(p) + np.log(q)) / 2, atol=1e-6)
