"""The pyfunc on whole photos: with ``detect`` absent, an image larger than a crop goes through the
detector the model carries and comes back as one row a face (input row, box, detector score, the
probabilities and label `FacePredictor` gives for that face); a photo without a face is one row of
nulls that serialises to JSON ``null``; ``detect: true / false`` force either reading. The python
model class is loaded directly (the served path: tests/registry/test_serve.py)."""

from __future__ import annotations

import io
import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from ferops.registry import pyfunc as P
from ferops.runtime import FacePredictor


def _jpeg(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=92)
    return buf.getvalue()


@pytest.fixture(scope="module")
def photos() -> dict[str, bytes]:
    from skimage.data import astronaut

    face = np.asarray(Image.fromarray(astronaut()).resize((256, 256), Image.Resampling.BILINEAR))
    two = np.full((300, 560, 3), 120, np.uint8)
    two[20:276, 10:266] = face
    two[30:286, 290:546] = face
    blank = np.full((240, 320, 3), 120, np.uint8)
    return {"one": _jpeg(astronaut()), "two": _jpeg(two), "blank": _jpeg(blank)}


@pytest.fixture(scope="module")
def model(bundle_dir) -> P.FERBundleModel:
    m = P.FERBundleModel()
    m.load_context(SimpleNamespace(artifacts=P.model_artifacts(bundle_dir)))
    return m


def test_a_photo_gives_one_row_a_face_as_face_predictor_does(model, bundle_dir, photos):
    out = model.predict(None, pd.DataFrame({"image": [photos["one"]]}))
    expected = FacePredictor(bundle_dir).predict(photos["one"])
    assert len(expected) == 1 and len(out) == 1
    row = out.iloc[0]
    assert row[P.ROW_COLUMN] == 0
    assert [row[c] for c in P.BOX_COLUMNS] == expected[0]["box"]
    assert row[P.FACE_SCORE_COLUMN] == pytest.approx(expected[0]["score"], abs=1e-4)
    assert row[P.LABEL_COLUMN] == expected[0]["label"]
    probs = [row[c] for c in P.prob_columns(model.class_names)]
    np.testing.assert_allclose(probs, list(expected[0]["probs"].values()), atol=1e-4)


def test_mixed_request_crop_two_faces_and_no_face(model, bundle_dir, face_images, photos):
    crop = P.encode_images(face_images[:1])["image"][0]
    out = model.predict(None, pd.DataFrame({"image": [crop, photos["two"], photos["blank"]]}))
    assert list(out.columns) == P.output_columns(model.class_names)
    assert out[P.ROW_COLUMN].tolist() == [0, 1, 1, 2]
    # the crop: its whole image, no detector score, the label the crop path gives
    assert [out.iloc[0][c] for c in P.BOX_COLUMNS] == [0, 0, 48, 48] and out.iloc[0][P.FACE_SCORE_COLUMN] is None
    assert out.iloc[0][P.LABEL_COLUMN] == model.predict(None, face_images[:1])[P.LABEL_COLUMN].iloc[0]
    # two faces, best detector score first, one on each half of the photo
    faces = out[out[P.ROW_COLUMN] == 1]
    assert faces[P.FACE_SCORE_COLUMN].is_monotonic_decreasing
    assert sorted(int(x) < 280 for x in faces["box_x"]) == [False, True]
    # no face: one row of nulls, strict JSON null through the scoring server's encoder
    blank = out.iloc[3]
    assert all(blank[c] is None for c in out.columns if c != P.ROW_COLUMN)
    from mlflow.pyfunc.scoring_server import predictions_to_json

    buf = io.StringIO()
    predictions_to_json(out, buf)

    def no_nan(name):
        raise AssertionError(f"{name} in the JSON answer")

    answer = json.loads(buf.getvalue(), parse_constant=no_nan)["predictions"]
    assert answer[3] == {c: (2 if c == P.ROW_COLUMN else None) for c in out.columns}
    assert answer[1]["box_w"] > 0 and isinstance(answer[1]["box_w"], int)


def test_detect_param_forces_either_reading(model, face_images, photos):
    photo = pd.DataFrame({"image": [photos["one"]]})
    as_crop = model.predict(None, photo, params={P.DETECT: False})
    assert len(as_crop) == 1 and [as_crop.iloc[0][c] for c in P.BOX_COLUMNS] == [0, 0, 512, 512]
    assert as_crop.iloc[0][P.FACE_SCORE_COLUMN] is None
    # a 48x48 crop sent with detect: true is searched for a face (too small to hold one the detector finds)
    forced = model.predict(None, face_images[:2], params={P.DETECT: True})
    assert forced[P.ROW_COLUMN].tolist() == [0, 1] and forced[P.LABEL_COLUMN].isna().all()
    with pytest.raises(ValueError, match=r"params.detect must be true or false"):
        model.predict(None, photo, params={P.DETECT: "yes"})
