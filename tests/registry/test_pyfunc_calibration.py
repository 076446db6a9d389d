"""The pyfunc applies the bundle's post-processing through BundleModel: the temperature in the
metadata scales the returned probabilities (labels unchanged), and `unknown` labels come back when
the request's reject_unknown param or the metadata's unknown.enabled asks; the raw probabilities
are returned in every case. The python model class is loaded directly (no server)."""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest

from ferops.registry import pyfunc as P
from ferops.runtime.bundle import METADATA_FILE, UNKNOWN_LABEL, BundleModel


def loaded(bundle_dir) -> P.FERBundleModel:
    model = P.FERBundleModel()
    model.load_context(SimpleNamespace(artifacts=P.model_artifacts(bundle_dir)))
    return model


def with_metadata(bundle_dir, dest, **changes):
    shutil.copytree(bundle_dir, dest)
    meta = json.loads((dest / METADATA_FILE).read_text())
    meta.update(changes)
    (dest / METADATA_FILE).write_text(json.dumps(meta))
    return dest


def probs_of(frame, class_names) -> np.ndarray:
    return frame[P.prob_columns(class_names)].to_numpy()


@pytest.fixture
def threshold(bundle_dir, face_images) -> float:
    conf = BundleModel(bundle_dir).predict(face_images)[0].max(1)
    t = float(np.median(conf))
    assert conf.min() < t < conf.max()
    return t


def test_temperature_is_applied_as_the_runtime_applies_it(bundle_dir, face_images, tmp_path):
    plain = loaded(bundle_dir).predict(None, P.encode_images(face_images))
    scaled_dir = with_metadata(bundle_dir, tmp_path / "t", temperature=3.0)
    scaled = loaded(scaled_dir).predict(None, P.encode_images(face_images))
    names = P.read_class_names(bundle_dir)
    assert list(scaled[P.LABEL_COLUMN]) == list(plain[P.LABEL_COLUMN])
    assert np.abs(probs_of(scaled, names) - probs_of(plain, names)).max() > 0.01
    np.testing.assert_allclose(probs_of(scaled, names), BundleModel(scaled_dir).predict(face_images)[0], atol=1e-6)


def test_reject_unknown_param_and_metadata_default(bundle_dir, face_images, tmp_path, threshold):
    names = P.read_class_names(bundle_dir)
    frame = P.encode_images(face_images)
    off = with_metadata(bundle_dir, tmp_path / "off", unknown={"threshold": threshold, "enabled": False})
    model = loaded(off)
    keep = model.predict(None, frame)
    assert UNKNOWN_LABEL not in set(keep[P.LABEL_COLUMN])
    rejected = model.predict(None, frame, params={P.REJECT_UNKNOWN: True})
    conf = probs_of(keep, names).max(1)
    expected = [UNKNOWN_LABEL if c < threshold else lab for c, lab in zip(conf, keep[P.LABEL_COLUMN], strict=True)]
    assert list(rejected[P.LABEL_COLUMN]) == expected and UNKNOWN_LABEL in expected
    np.testing.assert_array_equal(probs_of(rejected, names), probs_of(keep, names))  # raw probabilities, always

    on = loaded(with_metadata(bundle_dir, tmp_path / "on", unknown={"threshold": threshold, "enabled": True}))
    assert list(on.predict(None, frame)[P.LABEL_COLUMN]) == expected  # the metadata's default
    assert list(on.predict(None, frame, params={P.REJECT_UNKNOWN: False})[P.LABEL_COLUMN]) == list(keep[P.LABEL_COLUMN])
    assert list(on.predict(None, frame, params={P.REJECT_UNKNOWN: None})[P.LABEL_COLUMN]) == expected


def test_bad_params_are_http_400(bundle_dir, face_images):
    model = loaded(bundle_dir)  # the fixture bundle records no threshold
    frame = P.encode_images(face_images[:2])
    with pytest.raises(P.InvalidParams, match="no unknown threshold"):
        model.predict(None, frame, params={P.REJECT_UNKNOWN: True})
    with pytest.raises(P.InvalidParams, match="true or false"):
        model.predict(None, frame, params={P.REJECT_UNKNOWN: "yes"})
    with pytest.raises(P.InvalidParams, match="unknown params"):
        model.predict(None, frame, params={"threshold": 0.2})
    assert P.InvalidParams("x").get_http_status_code() == 400


def test_signature_declares_the_param():
    sig = P.model_signature(["a", "b"])
    assert sig.params is not None
    spec = {p.name: p for p in sig.params.params}[P.REJECT_UNKNOWN]
    assert spec.default is None and spec.dtype.name == "boolean"
