"""The served pyfunc refuses what it should not decode, before decoding it: too many rows, too many
bytes, formats other than PNG / JPEG, decompression bombs, truncated or non-image bytes; each
with an HTTP-400 MlflowException naming the row and the reason, and it still answers the next request."""

from __future__ import annotations

import base64
import io
import struct
import zlib
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from PIL import Image, ImageFile

from ferops.registry import pyfunc as P
from ferops.runtime import BundleModel


def bomb_png(side: int = 10_000) -> bytes:
    """A valid 8-bit grayscale PNG of side x side zeros (100 MP by default: under PIL's own error
    threshold, so PIL alone decodes it), about 100 KB, built a row at a time (little memory here)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    comp = zlib.compressobj(9)
    row = b"\x00" * (side + 1)  # filter byte + pixels
    idat = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def encoded(img: np.ndarray, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format=fmt, **kw)
    return buf.getvalue()


@pytest.fixture(scope="module")
def model(bundle_dir):
    m = P.FERBundleModel()
    m.load_context(SimpleNamespace(artifacts=P.model_artifacts(bundle_dir)))
    return m


def _refused(model, frame, match: str) -> MlflowException:
    with pytest.raises(MlflowException, match=match) as info:
        model.predict(None, frame)
    err = info.value
    assert err.error_code == "INVALID_PARAMETER_VALUE" and err.get_http_status_code() == 400
    assert isinstance(err, ValueError)
    return err


def test_decompression_bomb_is_refused_before_decoding(model, face_images, monkeypatch):
    bomb = bomb_png()
    assert len(bomb) < P.MAX_IMAGE_BYTES  # small on the wire: only the pixel count gives it away
    decoded, load = [], ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(self.size) or load(self))
    good = P.encode_images(face_images[:1])["image"][0]
    _refused(model, pd.DataFrame({"image": [good, bomb]}), r"row 1: image is 10000x10000 = 100000000 pixels, more than the limit")
    assert (10_000, 10_000) not in decoded


def test_truncated_jpeg_is_refused(model, face_images):
    jpeg = encoded(np.repeat(np.repeat(face_images[0], 4, 0), 4, 1), "JPEG", quality=95)
    _refused(model, pd.DataFrame({"image": [jpeg[: len(jpeg) // 2]]}), r"row 0: cannot decode image bytes \(truncated or corrupt")


@pytest.mark.parametrize("value", [b"not an image", b"GIF89a" + b"\x00" * 64, base64.b64encode(b"%PDF-1.4 nope").decode()])
def test_non_image_is_refused(model, value):
    _refused(model, pd.DataFrame({"image": [value]}), r"row 0: cannot decode image bytes: not a PNG or JPEG image")


@pytest.mark.parametrize("fmt", ["BMP", "GIF", "TIFF", "WEBP"])
def test_formats_other_than_png_and_jpeg_are_refused(model, face_images, fmt):
    """PIL would decode all of these; the served model accepts PNG and JPEG only."""
    data = encoded(face_images[0], fmt)
    with Image.open(io.BytesIO(data)) as img:
        assert img.format == fmt
    _refused(model, pd.DataFrame({"image": [P.encode_images(face_images[:1])["image"][0], data]}), r"row 1: .*not a PNG or JPEG")


def test_oversized_batch_is_refused(model, face_images):
    frame = P.encode_images(np.repeat(face_images[:1], P.MAX_ROWS + 1, axis=0))
    _refused(model, frame, rf"request has {P.MAX_ROWS + 1} rows, more than the limit of {P.MAX_ROWS}")
    _refused(model, np.repeat(face_images[:1], P.MAX_ROWS + 1, axis=0), "rows, more than the limit")
    assert len(model.predict(None, frame.iloc[: P.MAX_ROWS])) == P.MAX_ROWS


def test_oversized_image_bytes_are_refused(bundle_dir, face_images):
    m = P.FERBundleModel(max_image_bytes=4000)
    m.load_context(SimpleNamespace(artifacts=P.model_artifacts(bundle_dir)))
    noise = np.random.default_rng(0).integers(0, 256, (96, 96), dtype=np.uint8)
    big = encoded(noise, "PNG")
    assert len(big) > 4000
    _refused(m, pd.DataFrame({"image": [big]}), rf"row 0: image is {len(big)} bytes, more than the limit of 4000")
    # A base64 string is measured before it is decoded.
    _refused(m, pd.DataFrame({"image": [base64.b64encode(big).decode()]}), r"row 0: image is larger than the limit of 4000 bytes")
    assert len(m.predict(None, P.encode_images(face_images[:2]))) == 2


def test_limits_from_arguments_and_environment(monkeypatch):
    assert (P.FERBundleModel().max_rows, P.FERBundleModel().max_pixels) == (P.MAX_ROWS, P.MAX_IMAGE_PIXELS)
    monkeypatch.setenv("FEROPS_MAX_ROWS", "8")
    monkeypatch.setenv("FEROPS_MAX_IMAGE_PIXELS", "10000")
    m = P.FERBundleModel(max_image_bytes=123)
    assert (m.max_rows, m.max_image_bytes, m.max_pixels) == (8, 123, 10000)
    with pytest.raises(ValueError, match="max_rows must be >= 1"):
        P.FERBundleModel(max_rows=0)


def test_next_good_request_is_answered(model, bundle_dir, face_images):
    """After every kind of refusal the model answers a good request with the runtime's labels."""
    for bad in ([b"junk"], [bomb_png(3000)], [b"\xff\xd8\xff\xe0" + b"\x00" * 20]):
        with pytest.raises(MlflowException):
            model.predict(None, pd.DataFrame({"image": bad}))
    _, ref = BundleModel(bundle_dir).predict(face_images)
    assert list(model.predict(None, P.encode_images(face_images))[P.LABEL_COLUMN]) == ref
