"""Decode-once cache: decoded arrays stored as uncompressed .npz under a cache dir.

The key is a sha256 of the source kind, a fingerprint of its input files (their sha256, or for image
folders the list of relative paths, sizes and mtimes), the sha256 of the source's module (the decoding
code) and the source options, so a changed file, decoder or option never reads a stale entry. Entries are written atomically (temp file + rename); an unreadable entry is
ignored and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

CACHE_VERSION = 1


def file_sha256(path: str | os.PathLike) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def cache_key(kind: str, inputs: object, options: dict) -> str:
    blob = json.dumps({"version": CACHE_VERSION, "kind": kind, "inputs": inputs, "options": options}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class NpzCache:
    """Store of named numpy arrays plus a JSON ``meta`` dict, one .npz file per key."""

    def __init__(self, cache_dir: str | os.PathLike):
        self.dir = Path(cache_dir)

    def path(self, name: str, key: str) -> Path:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        return self.dir / f"{safe}-{key[:24]}.npz"

    def load(self, name: str, key: str) -> tuple[dict[str, np.ndarray], dict] | None:
        path = self.path(name, key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            meta = json.loads(str(arrays.pop("__meta__")))
        except Exception as exc:  # a truncated or foreign file: rebuild it
            log.warning("ignoring unreadable cache entry %s (%s)", path, exc)
            return None
        log.info("cache hit %s", path)
        return arrays, meta

    def save(self, name: str, key: str, arrays: dict[str, np.ndarray], meta: dict) -> Path:
        path = self.path(name, key)
        self.dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.dir, suffix=".npz.tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, __meta__=np.array(json.dumps(meta)), **arrays)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path
