"""`Fer2013Csv`: the FER2013 Kaggle CSV ``emotion,pixels,Usage`` (plain or gzip)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from ferops.data.cache import file_sha256
from ferops.data.cached_source import Source
from ferops.data.constants import FER_CLASSES, IMAGE_SIZE, usage_of
from ferops.data.csv_reader import read_csv, require_file
from ferops.data.pixel_strings import parse_pixel_strings
from ferops.data.raw import RawData
from ferops.data.validation import DataIssue, check_on_bad_rows, raise_if_bad

log = logging.getLogger(__name__)


class Fer2013Csv(Source):
    """FER2013 Kaggle CSV ``emotion,pixels,Usage`` (plain or gzip).

    ``emotion`` is the FER-7 id 0..6; ``pixels`` 2304 space-separated values 0..255 (48x48, row-major);
    ``Usage`` Training/PublicTest/PrivateTest -> train/val/test (train/val/test are accepted too). A file
    without a Usage column is read as all-train (split it with ``split.strategy=stratified``).
    Row ids are ``"<file name>:line <n>"`` with the header on line 1.
    """

    decoder_modules = ("ferops.data.csv_reader", "ferops.data.pixel_strings", "ferops.data.raw")

    def __init__(
        self, path: str | os.PathLike, on_bad_rows: str = "error", cache_dir: str | None = None, name: str | None = None
    ):
        self.path = Path(path)
        self.on_bad_rows = check_on_bad_rows(on_bad_rows)
        self.cache_dir = cache_dir
        self.name = name or "fer2013"

    def cache_inputs(self) -> object:
        return file_sha256(require_file(self.path, "FER2013 CSV"))

    def decode(self) -> RawData:
        path = require_file(self.path, "FER2013 CSV")
        table = read_csv(path, required=("emotion", "pixels"), optional=("usage",))
        reasons: dict[int, list[str]] = {}  # position in table -> reasons

        labels = np.full(len(table.lines), -1, np.int64)
        for i, value in enumerate(table.columns["emotion"]):
            v = value.strip()
            if v.isascii() and v.isdigit() and int(v) < len(FER_CLASSES):
                labels[i] = int(v)
            else:
                reasons.setdefault(i, []).append(f"unknown label {value!r} (expected 0..{len(FER_CLASSES) - 1})")

        if "usage" in table.columns:
            usage = np.empty(len(table.lines), dtype="<U5")
            for i, value in enumerate(table.columns["usage"]):
                u = usage_of(value)
                if u is None:
                    reasons.setdefault(i, []).append(f"unknown Usage {value!r} (expected Training, PublicTest or PrivateTest)")
                else:
                    usage[i] = u
        else:
            log.warning("%s: no Usage column, all rows are train (use split.strategy=stratified)", path)
            usage = np.full(len(table.lines), "train", dtype="<U5")

        pixels, bad_pixels = parse_pixel_strings(table.columns["pixels"])
        for i, reason in bad_pixels.items():
            reasons.setdefault(i, []).append(reason)

        issues = table.issues + [DataIssue(str(path), "; ".join(r), row=int(table.lines[i])) for i, r in reasons.items()]
        issues.sort(key=lambda q: q.row or 0)
        raise_if_bad(path, issues, self.on_bad_rows)
        keep = np.ones(len(table.lines), bool)
        keep[list(reasons)] = False
        ids = np.char.add(f"{path.name}:line ", table.lines[keep].astype(str))
        return RawData(
            images=pixels[keep].reshape(-1, IMAGE_SIZE, IMAGE_SIZE),
            labels=labels[keep],
            usage=usage[keep],
            ids=ids,
            name=self.name,
            quarantine=issues,
            stats={"n_records": table.n_records},
            source_index=table.records[keep],
        )
