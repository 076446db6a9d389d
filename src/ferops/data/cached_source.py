"""`Source`: the base of every data source; each decodes one kind of input into a `RawData`.

Every source is built by Hydra (``_target_``) and has ``load() -> RawData``. Options common to all:

- ``on_bad_rows``: ``error`` (default) stops with one `DataValidationError` naming the file, the bad rows
  (1-based CSV line numbers, header = line 1, or image paths) and the reason for each; ``skip`` leaves
  them out and lists them on ``RawData.quarantine`` (the pipeline writes the quarantine report).
- ``cache_dir``: when set, the decoded arrays are cached as .npz keyed by the input files' hash, the
  decoding code and the source options (see `ferops.data.cache`); a second load of the 32k-row FER2013
  CSV takes well under 1 s.

Sources: `ferops.data.fer2013.Fer2013Csv` (Kaggle CSV), `ferops.data.image_folder.ImageFolder`
(folders of images), `ferops.data.ferplus.FerPlus` (FER+ votes over the FER2013 pixels),
`ferops.data.synthetic.SyntheticFaces` (procedural).
"""

from __future__ import annotations

import importlib
import inspect
import logging

from ferops.data.cache import NpzCache, cache_key, file_sha256
from ferops.data.raw import RawData

log = logging.getLogger(__name__)


class Source:
    """Base: ``load()`` returns the cached decode when there is one, else ``decode()`` and caches it."""

    on_bad_rows: str = "error"
    cache_dir: str | None = None
    name: str = "source"

    def decode(self) -> RawData:  # pragma: no cover - abstract
        raise NotImplementedError

    def cache_inputs(self) -> object:
        """What identifies the input files (hashes); part of the cache key."""
        raise NotImplementedError

    # Modules beside the source's own whose code decodes its files (readers, parsers, the image
    # decoder): their source is part of the cache key too, so editing any of them invalidates it.
    decoder_modules: tuple[str, ...] = ()

    def code_digest(self) -> str | list[str]:
        """sha256 of the decoding code: the source's module, then each of `decoder_modules`."""
        own = file_sha256(inspect.getfile(type(self)))
        if not self.decoder_modules:
            return own
        return [own, *(file_sha256(inspect.getfile(importlib.import_module(m))) for m in self.decoder_modules)]

    def cache_options(self) -> dict:
        return {"on_bad_rows": self.on_bad_rows}

    def load(self) -> RawData:
        if not self.cache_dir:
            return self.decode()
        cache = NpzCache(self.cache_dir)
        # the decoding code is part of the key: editing it invalidates the source's cache entries
        key = cache_key(type(self).__name__, {"inputs": self.cache_inputs(), "code": self.code_digest()}, self.cache_options())
        hit = cache.load(self.name, key)
        if hit is not None:
            raw = RawData.from_arrays(*hit)
            if raw.quarantine:
                log.warning("%s: %d bad rows were skipped (cached decode)", self.name, len(raw.quarantine))
            return raw
        raw = self.decode()
        cache.save(self.name, key, *raw.to_arrays())
        return raw
