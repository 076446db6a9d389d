"""Tiny synthetic fixtures in the real file formats, for tests (tests/ is on pythonpath: `from fixtures_data import ...`).

Nothing here downloads or copies real data: pixels are seeded random noise.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

FER2013_HEADER = "emotion,pixels,Usage"
FERPLUS_HEADER = "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF"


def pixels_of(seed: int) -> np.ndarray:
    """A distinct, reproducible uint8 [48, 48] image per seed."""
    return np.random.default_rng(seed).integers(0, 256, (48, 48), dtype=np.uint8)


def pixel_string(img: np.ndarray) -> str:
    return " ".join(map(str, np.asarray(img).reshape(-1).tolist()))


def write_text(path: str | os.PathLike, lines: Iterable[str], gz: bool = False) -> Path:
    """Write lines (newline-terminated); gzip when ``gz``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines) + "\n"
    if gz:
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


def fer2013_lines(specs: Iterable[tuple[int, str, int]]) -> list[str]:
    """CSV lines (header first) for rows ``(label, Usage, pixel seed)``."""
    return [FER2013_HEADER] + [f"{label},{pixel_string(pixels_of(seed))},{usage}" for label, usage, seed in specs]


def write_fer2013_csv(path: str | os.PathLike, specs: Iterable[tuple[int, str, int]], gz: bool | None = None) -> Path:
    path = Path(path)
    return write_text(path, fer2013_lines(specs), gz=path.suffix == ".gz" if gz is None else gz)


def ferplus_line(usage: str, name: str, votes: Mapping[str, int]) -> str:
    """One fer2013new.csv line; ``votes`` maps column names (neutral, happiness, ..., NF) to counts."""
    cols = FERPLUS_HEADER.split(",")[2:]
    return ",".join([usage, name] + [str(int(votes.get(c, 0))) for c in cols])


def write_image_tree(root: str | os.PathLike, layout: Mapping[str, np.ndarray | bytes | None]) -> Path:
    """Files under ``root``: arrays saved as images (format from the suffix), bytes as-is, None = empty dir."""
    from PIL import Image

    root = Path(root)
    for rel, content in layout.items():
        p = root / rel
        if content is None:
            p.mkdir(parents=True, exist_ok=True)
            continue
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            Image.fromarray(np.asarray(content)).save(p)
    return root
