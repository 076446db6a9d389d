"""`ImageFolder`: folders of face images (``<root>/<class>/*`` or ``<root>/<split>/<class>/*``).

Images are decoded by `ferops.runtime.decode`, the decoder the runtime and the served model use.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from ferops.data.cached_source import Source
from ferops.data.class_map import canonical
from ferops.data.constants import IMAGE_SIZE, USAGE_ALIASES, usage_of
from ferops.data.raw import RawData
from ferops.data.validation import DataIssue, DataValidationError, check_on_bad_rows, raise_if_bad
from ferops.runtime.decode import ImageDecodeError
from ferops.runtime.decode import decode_image as _decode

# Split folder names are the usage names a CSV's Usage column accepts (kept under its old name).
SPLIT_DIRS = USAGE_ALIASES
# Training files are trusted: any format Pillow reads, picked by extension (the served model takes PNG/JPEG only).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm")


def decode_image(path: str | os.PathLike) -> np.ndarray:
    """An image file -> uint8 grayscale [48, 48] (see `ferops.runtime.decode` for each image mode)."""
    return _decode(path, size=IMAGE_SIZE)


class ImageFolder(Source):
    """Folders of face images, grayscale-converted and resized to 48x48 with PIL.

    Layouts (detected): ``<root>/{train,val,test}/<class>/*`` (the Kaggle image-folder release of FER2013
    has ``train`` and ``test``; ``validation``/``PublicTest``/``PrivateTest`` are recognised too) and the
    generic ``<root>/<class>/*`` whose rows are all train (split later). The class folder names are the
    source's classes (``RawData.class_names``: lower-case, common spellings such as ``happiness`` /
    ``anger`` read as ``happy`` / ``angry``, sorted); the class map decides which the task keeps, or
    ``data.classes=from_folders`` keeps them all. Bad inputs: unknown split folder, empty class folder,
    unreadable/corrupt image file. Hidden files are ignored; files whose
    extension is not an image extension are reported as bad rows too. The cache key covers every file's
    relative path, size and mtime.
    """

    decoder_modules = ("ferops.runtime.decode", "ferops.data.raw")

    def __init__(
        self, root: str | os.PathLike, on_bad_rows: str = "error", cache_dir: str | None = None, name: str | None = None
    ):
        self.root = Path(root)
        self.on_bad_rows = check_on_bad_rows(on_bad_rows)
        self.cache_dir = cache_dir
        self.name = name or self.root.name or "images"

    @staticmethod
    def _entries(folder: Path) -> list[Path]:
        return sorted(p for p in folder.iterdir() if not p.name.startswith("."))

    def _class_dirs(self) -> list[tuple[str, Path]]:
        """(usage, class folder) pairs, in a stable order."""
        if not self.root.is_dir():
            raise FileNotFoundError(f"image folder not found: {self.root}")
        subdirs = [p for p in self._entries(self.root) if p.is_dir()]
        if not subdirs:
            raise DataValidationError(self.root, "no class folders found (expected <root>/<class>/* or <root>/train/<class>/*)")
        if any(usage_of(p.name) for p in subdirs):
            out = []
            for split_dir in subdirs:
                usage = usage_of(split_dir.name)
                if usage is None:
                    out.append(("?", split_dir))  # reported as an unknown folder
                    continue
                out.extend((usage, p) for p in self._entries(split_dir) if p.is_dir())
            return out
        return [("train", p) for p in subdirs]

    def cache_inputs(self) -> object:
        h = hashlib.sha256()
        for usage, folder in self._class_dirs():
            for p in sorted(folder.rglob("*")):
                if p.is_file():
                    st = p.stat()
                    h.update(f"{usage}|{p.relative_to(self.root)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        return h.hexdigest()

    def decode(self) -> RawData:
        root = str(self.root)
        issues: list[DataIssue] = []
        images, labels, usages, ids = [], [], [], []
        class_dirs = self._class_dirs()
        class_names = sorted({canonical(folder.name) for usage, folder in class_dirs if usage != "?"})
        for usage, folder in class_dirs:
            if usage == "?":
                split_names = sorted(set(SPLIT_DIRS))
                issues.append(
                    DataIssue(root, f"unknown split folder {folder.name!r} (expected one of {split_names})", path=str(folder))
                )
                continue
            label = class_names.index(canonical(folder.name))
            files = [p for p in self._entries(folder) if p.is_file()]
            if not files:
                issues.append(DataIssue(root, "empty class folder", path=str(folder)))
                continue
            for p in files:
                if p.suffix.lower() not in IMAGE_EXTENSIONS:
                    issues.append(DataIssue(root, f"not an image file (extension {p.suffix!r})", path=str(p)))
                    continue
                try:
                    images.append(decode_image(p))
                except ImageDecodeError as exc:
                    issues.append(DataIssue(root, f"unreadable image ({exc})", path=str(p)))
                    continue
                except Exception as exc:  # e.g. an unreadable file
                    issues.append(DataIssue(root, f"unreadable image ({type(exc).__name__}: {exc})", path=str(p)))
                    continue
                labels.append(label)
                usages.append(usage)
                ids.append(str(p))
        raise_if_bad(self.root, issues, self.on_bad_rows)
        if not images:
            raise DataValidationError(self.root, "no readable images found")
        return RawData(
            images=np.stack(images),
            labels=np.array(labels),
            usage=np.array(usages),
            ids=np.array(ids),
            name=self.name,
            class_names=tuple(class_names),
            quarantine=issues,
        )
