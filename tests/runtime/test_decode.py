"""ferops.runtime.decode: one behaviour per image mode, the same from a file (training image folders),
from bytes (the served pyfunc) and from an opened PIL image (the runtime)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from ferops.data.image_folder import ImageFolder
from ferops.registry import pyfunc as P
from ferops.runtime import ImageDecodeError, decode_image, open_image, prepare_face


def _gradient() -> np.ndarray:
    return (np.add.outer(np.arange(48), np.arange(48)) * 255 // 94).astype(np.uint8)


def _rgb() -> np.ndarray:
    return np.random.default_rng(3).integers(0, 256, (48, 48, 3), dtype=np.uint8)


def _encode(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _luma(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).convert("L"))


def _palette_with_transparency() -> tuple[Image.Image, np.ndarray]:
    pal = Image.fromarray(_rgb()).quantize(32)
    pal.info["transparency"] = 0  # palette entry 0 is transparent: its colour is kept, alpha dropped
    return pal, _luma(np.asarray(pal.convert("RGB")))


def _cases() -> dict[str, tuple[Image.Image, np.ndarray]]:
    """mode -> (image saved as PNG, the expected uint8 [48, 48])."""
    g, rgb = _gradient(), _rgb()
    alpha = np.random.default_rng(4).integers(0, 256, (48, 48), dtype=np.uint8)
    return {
        "L": (Image.fromarray(g), g),
        "I;16": (Image.fromarray(g.astype(np.uint16) * 257), g),  # 16-bit scaled to 8, not clipped
        "P": _palette_with_transparency(),
        "LA": (Image.fromarray(np.dstack([g, alpha]), "LA"), g),
        "RGBA": (Image.fromarray(np.dstack([rgb, alpha]), "RGBA"), _luma(rgb)),
        "RGB": (Image.fromarray(rgb), _luma(rgb)),
    }


@pytest.mark.parametrize("mode", ["L", "I;16", "P", "LA", "RGBA", "RGB"])
def test_each_mode_decodes_the_same_from_file_bytes_and_pil(mode, tmp_path):
    img, expected = _cases()[mode]
    data = _encode(img)
    with Image.open(io.BytesIO(data)) as opened:
        assert opened.mode == mode  # the PNG really holds this mode
        from_pil = prepare_face(opened)
    path = tmp_path / "face.png"
    path.write_bytes(data)
    np.testing.assert_array_equal(decode_image(data), expected)
    np.testing.assert_array_equal(decode_image(path), expected)
    np.testing.assert_array_equal(from_pil, expected)
    np.testing.assert_array_equal(P.decode_image(data), expected)  # the served model's untrusted path


def test_sixteen_bit_keeps_its_range():
    ramp = np.linspace(0, 65535, 48 * 48).reshape(48, 48).astype(np.uint16)
    out = decode_image(_encode(Image.fromarray(ramp)))
    assert out.min() == 0 and out.max() == 255
    np.testing.assert_array_equal(out, np.rint(ramp / 257).astype(np.uint8))


def test_exif_rotated_jpeg_is_decoded_upright():
    upright = np.zeros((48, 48), np.uint8)
    upright[:12] = 255  # a bright band on top
    # stored rotated a quarter turn, with the EXIF tag saying how to turn it back (as phones write it)
    stored = Image.fromarray(np.rot90(upright, 1).copy())
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 CW to display
    data = _encode(stored, "JPEG", quality=95, exif=exif)
    for out in (decode_image(data), P.decode_image(data)):
        assert out[:12].mean() > 200 and out[24:].mean() < 50


def test_image_folder_decodes_with_the_same_decoder(tmp_path):
    img, expected = _cases()["I;16"]
    (tmp_path / "happy").mkdir()
    img.save(tmp_path / "happy" / "a.png")
    np.testing.assert_array_equal(ImageFolder(tmp_path).load().images[0], expected)


def test_limits_are_checked_before_decoding():
    data = _encode(Image.fromarray(_gradient()))
    with pytest.raises(ImageDecodeError, match="image is 48x48 = 2304 pixels, more than the limit of 100"):
        open_image(data, max_pixels=100)
    with pytest.raises(ImageDecodeError, match=rf"image is {len(data)} bytes, more than the limit of 10"):
        open_image(data, max_bytes=10)
    gif = _encode(Image.fromarray(_gradient()), "GIF")
    assert decode_image(gif).shape == (48, 48)  # trusted callers: any format Pillow reads
    with pytest.raises(ImageDecodeError, match="not a PNG or JPEG image"):
        decode_image(gif, formats=("PNG", "JPEG"))
    with pytest.raises(ImageDecodeError, match="truncated or corrupt"):
        decode_image(_encode(Image.fromarray(_rgb()), "JPEG")[:200])
