"""The FER2013 bundle that ships in the package: it loads, its card matches its metadata, and
`ferops predict` uses it when no --model is given."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from ferops.cli import main
from ferops.runtime import SHIPPED_BUNDLE, BundleModel, FacePredictor

skimage_data = pytest.importorskip("skimage.data")


def test_shipped_bundle_is_a_trained_seven_class_model_with_a_matching_card():
    model = BundleModel(SHIPPED_BUNDLE)
    assert model.class_names == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert model.image_size == (48, 48)
    assert sum(f.stat().st_size for f in SHIPPED_BUNDLE.iterdir()) < 2 * 1024 * 1024  # <= 2 MB in git
    card = (SHIPPED_BUNDLE / "MODEL_CARD.md").read_text(encoding="utf-8")
    meta = model.metadata
    assert meta["source"]["run_id"] in card and "PublicTest" in card and "research use" in card
    assert f"temperature {meta['temperature']:.3f}" in card and f"{meta['unknown']['threshold']:.2f}" in card
    assert model.tta == "hflip" and '"tta": "hflip"' in card
    # a trained model: different inputs get different answers (a constant model would not); one
    # view, since averaging a noise image with its mirror flattens the answers it is checked on
    rng = np.random.default_rng(0)
    probs, _ = BundleModel(SHIPPED_BUNDLE, tta="none").predict(rng.integers(0, 256, (16, 48, 48), dtype=np.uint8))
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-5) and np.ptp(probs, axis=0).max() > 0.05


def test_predict_without_a_model_runs_the_shipped_bundle(tmp_path, capsys):
    from PIL import Image

    photo = tmp_path / "astronaut.jpg"
    Image.fromarray(skimage_data.astronaut()).save(photo, quality=92)
    faces = FacePredictor().predict(photo)
    assert len(faces) == 1 and faces[0]["label"] in BundleModel(SHIPPED_BUNDLE).class_names
    assert main(["predict", str(photo)]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("{"))
    record = json.loads(line)
    assert record["faces"][0]["label"] == faces[0]["label"]
    assert re.fullmatch(r"[a-z]+", record["faces"][0]["label"])
