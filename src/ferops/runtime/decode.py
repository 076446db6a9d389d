"""The one image decoder: an image file, encoded bytes, a PIL image or an array -> uint8 gray ``[48, 48]``.

Training-time image folders (`ferops.data.image_folder`), the runtime and the served pyfunc all decode
here, so a face is turned into model input the same way everywhere. This is the only preprocessing
outside the model (normalisation, channel repeat and any resize to the backbone's size are inside it).
Numpy + Pillow only.

One behaviour for every image mode:

- EXIF orientation is applied (a phone JPEG stored sideways is decoded upright).
- 16-bit gray (``I;16*`` and ``I``, e.g. 16-bit PNG / PGM) is scaled to 8 bits (``v / 257``, rounded);
  ``F`` images, like float arrays, are taken as pixel values 0..255.
- Palette images are expanded through their palette; transparency and alpha are dropped
  (``LA``, ``PA``, ``RGBA``, palette transparency and ``[H, W, 4]`` arrays alike: the colour under the
  alpha is kept).
- Colour -> gray with Pillow's ``"L"`` conversion (ITU-R 601-2 luma:
  ``L = R * 299/1000 + G * 587/1000 + B * 114/1000``); ``bgr=True`` for OpenCV-ordered arrays.
- Resize with Pillow's bilinear filter, which widens its support when shrinking (antialiased).

Encoded input is opened by `open_image`. ``formats`` limits the formats Pillow may identify (the pyfunc
passes `UNTRUSTED_FORMATS`; trusted training files pass None: any format Pillow reads); ``max_bytes``
and ``max_pixels`` are checked before anything is decoded. Every refusal raises `ImageDecodeError`.

Whole photos (``ferops predict``, `ferops.runtime.FacePredictor`): `to_rgb` gives the detector the
colour image by the same per-mode rules, and `crop_faces` cuts each detected face as a square with
a per-detector margin (`face_crop_square`), converts it to gray and resizes it like any crop.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = [
    "FACE_SIZE",
    "UNTRUSTED_FORMATS",
    "ImageDecodeError",
    "array_to_image",
    "check_pixels",
    "crop_faces",
    "decode_image",
    "face_crop_square",
    "open_image",
    "prepare_face",
    "prepare_faces",
    "to_gray",
    "to_rgb",
]

FACE_SIZE = 48
# What a server decodes from anyone: the two formats cameras and browsers produce, nothing with a
# larger attack surface (TIFF, WebP, BMP, GIF, ...).
UNTRUSTED_FORMATS = ("PNG", "JPEG")
_SIXTEEN_BIT_MODES = ("I", "I;16", "I;16L", "I;16B", "I;16N")


class ImageDecodeError(ValueError):
    """Input that is not a decodable image within the limits; the message says why."""


def check_pixels(width: int, height: int, max_pixels: int | None) -> None:
    """Raise `ImageDecodeError` when a ``width`` x ``height`` image exceeds ``max_pixels`` (None: no limit)."""
    if max_pixels is not None and width * height > max_pixels:
        raise ImageDecodeError(f"image is {width}x{height} = {width * height} pixels, more than the limit of {max_pixels}")


def open_image(
    source: str | os.PathLike[str] | bytes | bytearray | memoryview,
    formats: Sequence[str] | None = None,
    max_bytes: int | None = None,
    max_pixels: int | None = None,
) -> Image.Image:
    """An image file or encoded bytes -> a loaded PIL image. Limits are checked before decoding:
    ``max_bytes`` on the encoded size, ``max_pixels`` on the header's width x height (a small PNG
    may hold gigapixels of zeros); truncated or corrupt data is refused, not padded."""
    if isinstance(source, (str, os.PathLike)):
        what, data = "image file", Path(source).read_bytes()
    else:
        what, data = "image bytes", bytes(source)
    if max_bytes is not None and len(data) > max_bytes:
        raise ImageDecodeError(f"image is {len(data)} bytes, more than the limit of {max_bytes}")
    names = " or ".join(formats) if formats else ""
    img = None
    try:
        img = Image.open(io.BytesIO(data), formats=tuple(formats) if formats else None)
        check_pixels(img.width, img.height, max_pixels)  # header only: nothing decoded yet
        img.load()
    except Exception as err:
        if img is not None:
            img.close()
        if isinstance(err, ImageDecodeError):
            raise
        if isinstance(err, UnidentifiedImageError):
            kind = f"not a {names} image" if formats else "not an image format Pillow reads"
            raise ImageDecodeError(f"cannot decode {what}: {kind}") from err
        if isinstance(err, Image.DecompressionBombError):  # PIL's own (wider) guard
            raise ImageDecodeError(f"cannot decode {what}: {err}") from err
        if isinstance(err, (OSError, SyntaxError, ValueError, EOFError)):  # truncated / corrupt data
            kind = f" {names}" if names else ""
            raise ImageDecodeError(f"cannot decode {what} (truncated or corrupt{kind}): {err}") from err
        raise
    return img


def to_gray(img: Image.Image) -> Image.Image:
    """Any PIL image -> mode ``"L"``, upright (see the module doc for each mode)."""
    img = ImageOps.exif_transpose(img)  # no-op (a copy) without an Orientation tag
    if img.mode == "L":
        return img
    if img.mode in _SIXTEEN_BIT_MODES:
        arr = np.asarray(img, dtype=np.float64) / 257.0
        return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8))
    if img.mode == "F":
        return Image.fromarray(np.clip(np.rint(np.asarray(img, dtype=np.float64)), 0, 255).astype(np.uint8))
    if img.mode == "LA":
        return img.getchannel("L")
    # P / PA (palette and its transparency), RGBA, 1, CMYK, YCbCr, ...: through RGB, alpha dropped
    if img.mode != "RGB":
        img = img.convert("RGB")
    return img.convert("L")


def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL image -> mode ``"RGB"``, upright, by the same rules as `to_gray` (16-bit and float gray
    scaled as there, palette expanded, alpha dropped): ``to_rgb(img).convert("L")`` equals
    ``to_gray(img)`` for every mode, so a face detected on the colour image is cropped from the gray
    image the model would get from the same file."""
    if img.mode in ("L", "LA", "F", *_SIXTEEN_BIT_MODES):
        return to_gray(img).convert("RGB")
    img = ImageOps.exif_transpose(img)
    return img if img.mode == "RGB" else img.convert("RGB")


def array_to_image(arr: np.ndarray, bgr: bool = False, what: str = "image") -> Image.Image:
    """An array ``[H, W]``, ``[H, W, 1]``, ``[H, W, 3]`` (RGB; BGR with ``bgr=True``) or ``[H, W, 4]``
    (alpha dropped) of pixel values 0..255 in any numeric dtype -> a PIL ``"L"`` or ``"RGB"`` image.
    ``what`` names the input in error messages."""
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim == 3 and arr.shape[-1] == 4:
        arr = arr[..., :3]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] == 3)):
        raise ValueError(f"expected a {what} [H, W], [H, W, 1], [H, W, 3] or [H, W, 4], got shape {list(arr.shape)}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"empty {what}: shape {list(arr.shape)}")
    if arr.dtype != np.uint8:
        # arrays hold pixel values 0..255 whatever their dtype (multiply 0..1 images by 255 first)
        if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
            raise TypeError(f"{what} must hold numbers, got dtype {arr.dtype}")
        arr = np.clip(np.rint(arr.astype(np.float64)), 0, 255).astype(np.uint8)
    if arr.ndim == 3 and bgr:
        arr = arr[..., ::-1]
    return Image.fromarray(np.ascontiguousarray(arr))  # 2-D uint8 -> "L", [H, W, 3] uint8 -> "RGB"


def _array_to_gray(face: np.ndarray, bgr: bool) -> Image.Image:
    img = array_to_image(face, bgr, what="face crop")
    return img if img.mode == "L" else img.convert("L")


def prepare_face(face: Image.Image | np.ndarray, size: int = FACE_SIZE, bgr: bool = False) -> np.ndarray:
    """A face crop (PIL image of any mode, or array ``[H, W]``, ``[H, W, 1]``, ``[H, W, 3]`` RGB,
    ``[H, W, 4]`` RGBA; any size) -> uint8 ``[size, size]``. ``bgr=True`` for OpenCV-ordered colour arrays."""
    if isinstance(face, Image.Image):
        if bgr:
            raise ValueError("bgr=True applies to numpy arrays only")
        img = to_gray(face)
    else:
        img = _array_to_gray(face, bgr)
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.uint8).copy()


def prepare_faces(faces: Iterable[Image.Image | np.ndarray], size: int = FACE_SIZE, bgr: bool = False) -> np.ndarray:
    """Many face crops -> uint8 ``[N, size, size]``."""
    out = [prepare_face(f, size=size, bgr=bgr) for f in faces]
    if not out:
        return np.zeros((0, size, size), dtype=np.uint8)
    return np.stack(out)


def decode_image(
    source: str | os.PathLike[str] | bytes | bytearray | memoryview,
    size: int = FACE_SIZE,
    formats: Sequence[str] | None = None,
    max_bytes: int | None = None,
    max_pixels: int | None = None,
) -> np.ndarray:
    """An image file or encoded bytes -> uint8 gray ``[size, size]`` (`open_image`, then `prepare_face`)."""
    with open_image(source, formats=formats, max_bytes=max_bytes, max_pixels=max_pixels) as img:
        return prepare_face(img, size=size)


def face_crop_square(box: Sequence[float], margin: float, shift_up: float = 0.0) -> tuple[int, int, int, int]:
    """A detector's face box ``(x, y, w, h)`` -> the square ``(left, top, right, bottom)`` to crop for
    the model: side ``max(w, h) * (1 + margin)``, centred on the box centre moved up by
    ``shift_up * max(w, h)``. The square may reach outside the image (`crop_faces` pads it).

    FER2013 faces are tight and roughly registered; ``margin`` and ``shift_up`` are measured per
    detector so that its box on a FER2013 image maps back onto that 48x48 crop
    (`ferops.runtime.faces.BlazeFaceSpec`, docs/results.md "Face detection")."""
    x, y, w, h = (float(v) for v in box)
    if w <= 0 or h <= 0:
        raise ValueError(f"face box must have a positive width and height, got {list(box)}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    side = max(w, h)
    crop = side * (1.0 + margin)
    cx, cy = x + w / 2.0, y + h / 2.0 - shift_up * side
    left, top = round(cx - crop / 2.0), round(cy - crop / 2.0)
    n = max(1, round(crop))
    return left, top, left + n, top + n


def crop_faces(
    image: Image.Image | np.ndarray,
    boxes: Iterable[Sequence[float]],
    margin: float,
    shift_up: float = 0.0,
    size: int = FACE_SIZE,
    bgr: bool = False,
) -> np.ndarray:
    """Face crops for the model, uint8 ``[N, size, size]``: the whole image to gray once (`to_gray` /
    the array rules of `prepare_face`), then per box the `face_crop_square`, its part outside the
    image filled by repeating the edge pixels (as a face at the border of a photo looks in FER2013:
    no black bars), resized by `prepare_face`."""
    gray_img = to_gray(image) if isinstance(image, Image.Image) else _array_to_gray(image, bgr)
    gray = np.asarray(gray_img, dtype=np.uint8)
    h, w = gray.shape
    crops: list[np.ndarray] = []
    for box in boxes:
        left, top, right, bottom = face_crop_square(box, margin, shift_up)
        x0, y0, x1, y1 = max(left, 0), max(top, 0), min(right, w), min(bottom, h)
        if x1 <= x0 or y1 <= y0:
            raise ValueError(f"face box {list(box)} lies outside the {w}x{h} image")
        part = np.pad(gray[y0:y1, x0:x1], ((y0 - top, bottom - y1), (x0 - left, right - x1)), mode="edge")
        crops.append(prepare_face(part, size=size))
    if not crops:
        return np.zeros((0, size, size), dtype=np.uint8)
    return np.stack(crops)
