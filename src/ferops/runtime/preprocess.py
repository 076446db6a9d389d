"""Turn any face crop into the model's input: uint8 grayscale ``[48, 48]``.

This is the only preprocessing outside the model (normalisation, channel repeat and any resize
to the backbone's size are inside it). Numpy + Pillow only.

- Colour -> gray with Pillow's ``"L"`` conversion (ITU-R 601-2 luma:
  ``L = R * 299/1000 + G * 587/1000 + B * 114/1000``); alpha is dropped.
- Resize with Pillow's bilinear filter, which widens its support when shrinking (antialiased).
- Float arrays are taken as pixel values in 0..255 (multiply 0..1 images by 255 first).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from PIL import Image

__all__ = ["FACE_SIZE", "prepare_face", "prepare_faces"]

FACE_SIZE = 48


def prepare_face(face: Image.Image | np.ndarray, size: int = FACE_SIZE, bgr: bool = False) -> np.ndarray:
    """A face crop (PIL image or array ``[H, W]``, ``[H, W, 1]``, ``[H, W, 3]`` RGB, ``[H, W, 4]`` RGBA;
    any size) -> uint8 ``[size, size]``. ``bgr=True`` for OpenCV-ordered colour arrays."""
    if isinstance(face, Image.Image):
        img = face
        if bgr:
            raise ValueError("bgr=True applies to numpy arrays only")
        if img.mode not in ("L", "RGB"):
            img = img.convert("RGB")
    else:
        arr = np.asarray(face)
        if arr.ndim == 3 and arr.shape[-1] == 1:
            arr = arr[..., 0]
        if arr.ndim == 3 and arr.shape[-1] == 4:
            arr = arr[..., :3]
        if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] == 3)):
            raise ValueError(f"expected a face crop [H, W], [H, W, 1], [H, W, 3] or [H, W, 4], got shape {list(arr.shape)}")
        if arr.shape[0] == 0 or arr.shape[1] == 0:
            raise ValueError(f"empty face crop: shape {list(arr.shape)}")
        if arr.dtype != np.uint8:
            if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
                raise TypeError(f"face crop must hold numbers, got dtype {arr.dtype}")
            arr = np.clip(np.rint(arr.astype(np.float64)), 0, 255).astype(np.uint8)
        if arr.ndim == 3 and bgr:
            arr = arr[..., ::-1]
        img = Image.fromarray(np.ascontiguousarray(arr))  # 2-D uint8 -> "L", [H, W, 3] uint8 -> "RGB"
    if img.mode != "L":
        img = img.convert("L")
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.uint8).copy()


def prepare_faces(faces: Iterable[Image.Image | np.ndarray], size: int = FACE_SIZE, bgr: bool = False) -> np.ndarray:
    """Many face crops -> uint8 ``[N, size, size]``."""
    out = [prepare_face(f, size=size, bgr=bgr) for f in faces]
    if not out:
        return np.zeros((0, size, size), dtype=np.uint8)
    return np.stack(out)
