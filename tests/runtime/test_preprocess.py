"""prepare_face: any face crop (PIL / numpy, any size, gray / RGB / RGBA / BGR) -> uint8 [48, 48]."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ferops.runtime import prepare_face, prepare_faces


def _gradient(h: int, w: int) -> np.ndarray:
    return (np.add.outer(np.arange(h), np.arange(w)) * 255 / (h + w - 2)).astype(np.uint8)


def test_48x48_gray_passes_through_unchanged():
    img = np.random.default_rng(0).integers(0, 256, (48, 48), dtype=np.uint8)
    out = prepare_face(img)
    assert out.dtype == np.uint8 and out.shape == (48, 48)
    np.testing.assert_array_equal(out, img)
    np.testing.assert_array_equal(prepare_face(img[..., None]), img)


def test_rgb_is_converted_with_pil_luma():
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
    expected = np.asarray(Image.fromarray(rgb).convert("L"))
    np.testing.assert_array_equal(prepare_face(rgb), expected)
    luma = rgb @ np.array([0.299, 0.587, 0.114])
    assert np.abs(prepare_face(rgb).astype(float) - luma).max() <= 1.0
    # BGR input (OpenCV order) gives the same gray as its RGB twin; RGBA drops alpha
    np.testing.assert_array_equal(prepare_face(rgb[..., ::-1], bgr=True), expected)
    rgba = np.concatenate([rgb, np.full((48, 48, 1), 7, np.uint8)], axis=2)
    np.testing.assert_array_equal(prepare_face(rgba), expected)


def test_any_size_is_resized_and_keeps_content():
    big = _gradient(200, 160)
    out = prepare_face(big)
    assert out.shape == (48, 48)
    assert out[0, 0] < 20 and out[-1, -1] > 235  # the gradient survives the resize
    assert (np.diff(out.astype(int), axis=1) >= 0).all()
    small = prepare_face(_gradient(20, 20))
    assert small.shape == (48, 48)
    const = prepare_face(np.full((97, 61), 130, np.uint8))
    assert (const == 130).all()


def test_pil_and_float_inputs():
    arr = _gradient(96, 96)
    np.testing.assert_array_equal(prepare_face(Image.fromarray(arr)), prepare_face(arr))
    np.testing.assert_array_equal(prepare_face(Image.fromarray(arr).convert("RGB")), prepare_face(arr))
    np.testing.assert_array_equal(prepare_face(arr.astype(np.float32)), prepare_face(arr))
    assert prepare_face(np.full((48, 48), 300.0)).max() == 255  # clipped to the pixel range


def test_prepare_faces_batches_mixed_inputs():
    faces = [_gradient(48, 48), np.zeros((100, 80, 3), np.uint8), Image.new("L", (30, 30), 200)]
    out = prepare_faces(faces)
    assert out.shape == (3, 48, 48) and out.dtype == np.uint8
    assert (out[1] == 0).all() and (out[2] == 200).all()
    assert prepare_faces([]).shape == (0, 48, 48)


@pytest.mark.parametrize("bad", [np.zeros((48,)), np.zeros((4, 48, 48, 2)), np.zeros((0, 10))])
def test_bad_shapes_are_rejected(bad):
    with pytest.raises(ValueError):
        prepare_face(bad)
