"""Serialise the registry's read-modify-write steps (first registration, alias moves) between processes.

MLflow has no compare-and-set on aliases: `promote` reads `champion`, decides, then writes
`previous-champion` and `champion`; two callers at once (`dvc queue start -j 2` with auto-promotion)
can both read the same champion and the later write silently drops the other's decision. So every
such step runs under an exclusive file lock (`filelock`, an OS-level ``flock``):

- SQLite store (``sqlite:///<path>``): ``<path>.registry.lock`` next to the database, so every
  process that opens the store, from any working directory, takes the same lock;
- anything else (``http(s)://`` tracking server, ``postgresql://``): a lock file per store URI in
  ``$FEROPS_REGISTRY_LOCK_DIR`` (default: ``<tmp>/ferops-registry-locks``). It serialises callers
  on one machine; callers on different machines are not serialised (see docs/scale-out.md): for them
  `promote` verifies its writes afterwards and retries (`ferops.registry.promote`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

log = logging.getLogger(__name__)

LOCK_DIR_ENV = "FEROPS_REGISTRY_LOCK_DIR"
DEFAULT_TIMEOUT_S = 600.0


class RegistryLockTimeout(RuntimeError):
    pass


def lock_path(uri: str) -> Path:
    if uri.startswith("sqlite:///"):
        db = Path(uri.removeprefix("sqlite:///")).resolve()
        return db.with_name(db.name + ".registry.lock")
    base = Path(os.environ.get(LOCK_DIR_ENV) or Path(tempfile.gettempdir()) / "ferops-registry-locks")
    base.mkdir(parents=True, exist_ok=True)
    return base / f"{hashlib.sha256(uri.rstrip('/').encode()).hexdigest()[:16]}.lock"


def is_shared_across_machines(uri: str) -> bool:
    """True when callers on other machines can reach the store, so the file lock does not cover them."""
    if uri.startswith(("sqlite:", "file:")) or "://" not in uri:
        return False
    host = uri.split("://", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1].split(":", 1)[0].strip("[]")
    return host not in ("127.0.0.1", "localhost", "::1", "")


@contextmanager
def registry_lock(uri: str, what: str = "registry", timeout: float = DEFAULT_TIMEOUT_S) -> Iterator[Path]:
    path = lock_path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path), timeout=timeout)
    try:
        with lock:
            log.debug("%s: holding %s", what, path)
            yield path
    except Timeout as err:
        raise RegistryLockTimeout(
            f"{what}: could not take the registry lock {path} within {timeout:.0f} s; another promotion or "
            f"registration holds it (remove the file only if no such process is running)"
        ) from err
