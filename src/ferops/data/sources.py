"""Data sources: each decodes one kind of input into a `RawData` (uint8 [N, 48, 48] + FER-7 labels).

Every source is built by Hydra (``_target_``) and has ``load() -> RawData``. Options common to all:

- ``on_bad_rows``: ``error`` (default) stops with one `DataValidationError` naming the file, the bad rows
  (1-based CSV line numbers, header = line 1, or image paths) and the reason for each; ``skip`` leaves
  them out and lists them on ``RawData.quarantine`` (the pipeline writes the quarantine report).
- ``cache_dir``: when set, the decoded arrays are cached as .npz keyed by the input files' hash and the
  source options (see `ferops.data.cache`); a second load of the 32k-row FER2013 CSV takes well under 1 s.

Sources here: `Fer2013Csv` (Kaggle CSV), `ImageFolder` (folders of images), `FerPlus` (FER+ votes over the
FER2013 pixels). The procedural `SyntheticFaces` lives in `ferops.data.synthetic`.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import inspect
import io
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

import numpy as np

from ferops.data.cache import NpzCache, cache_key, file_sha256
from ferops.data.constants import (
    FER_CLASS_TO_ID,
    FER_CLASSES,
    IMAGE_SIZE,
    N_PIXELS,
    USAGES,
    class_id,
)
from ferops.data.validation import DataIssue, DataValidationError, check_on_bad_rows, raise_if_bad

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------ RawData
@dataclass(eq=False)
class RawData:
    """Decoded dataset rows (see docs/architecture.md, "Data contracts").

    ``labels`` index ``class_names`` (the FER-7 names for sources; a `ClassMap` renames them);
    ``soft`` holds per-class probabilities for soft-label sources; ``usage`` is train/val/test per row;
    ``ids`` identify rows in reports; ``quarantine`` lists rows left out by ``on_bad_rows=skip``;
    ``stats`` holds source-specific counts (e.g. rows dropped by the FER+ label policy);
    ``source_index`` is the 0-based data-record index in the source file (used to join FER+ votes).
    """

    images: np.ndarray
    labels: np.ndarray
    usage: np.ndarray
    ids: np.ndarray
    name: str
    soft: np.ndarray | None = None
    class_names: tuple[str, ...] = FER_CLASSES
    quarantine: list[DataIssue] = field(default_factory=list)
    stats: dict = field(default_factory=dict)
    source_index: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.images)
        self.images = np.asarray(self.images, dtype=np.uint8).reshape(n, IMAGE_SIZE, IMAGE_SIZE)
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(n)
        self.usage = np.asarray(self.usage, dtype="<U5").reshape(n)
        self.ids = np.asarray(self.ids, dtype=str).reshape(n)
        self.class_names = tuple(self.class_names)
        if self.soft is not None:
            self.soft = np.asarray(self.soft, dtype=np.float32).reshape(n, len(self.class_names))
        if self.source_index is not None:
            self.source_index = np.asarray(self.source_index, dtype=np.int64).reshape(n)
        bad_usage = set(np.unique(self.usage).tolist()) - set(USAGES)
        if bad_usage:
            raise ValueError(f"{self.name}: usage values must be in {USAGES}, got {sorted(bad_usage)}")
        if n and (self.labels.min() < 0 or self.labels.max() >= len(self.class_names)):
            raise ValueError(f"{self.name}: labels outside 0..{len(self.class_names) - 1}")

    def __len__(self) -> int:
        return len(self.images)

    @cached_property
    def fingerprint(self) -> str:
        """sha256 of the decoded arrays (images, labels, soft labels, usage) and the class names."""
        h = hashlib.sha256()
        h.update(np.ascontiguousarray(self.images).tobytes())
        h.update(self.labels.tobytes())
        if self.soft is not None:
            h.update(self.soft.tobytes())
        h.update("\n".join(self.usage.tolist()).encode())
        h.update("\n".join(self.class_names).encode())
        return h.hexdigest()

    def subset(self, index: np.ndarray) -> RawData:
        """Rows selected by an index or boolean mask (quarantine and stats are kept)."""
        index = np.asarray(index)
        return replace(
            self,
            images=self.images[index],
            labels=self.labels[index],
            usage=self.usage[index],
            ids=self.ids[index],
            soft=None if self.soft is None else self.soft[index],
            source_index=None if self.source_index is None else self.source_index[index],
            quarantine=list(self.quarantine),
            stats=dict(self.stats),
        )

    def counts(self) -> dict[str, dict[str, int]]:
        """Rows per usage and class name."""
        out = {}
        for usage in USAGES:
            lab = self.labels[self.usage == usage]
            if len(lab):
                out[usage] = {
                    c: int(n) for c, n in zip(self.class_names, np.bincount(lab, minlength=len(self.class_names)))
                }
        return out

    # -- cache (de)serialisation
    def to_arrays(self) -> tuple[dict[str, np.ndarray], dict]:
        arrays = {"images": self.images, "labels": self.labels, "usage": self.usage, "ids": self.ids}
        if self.soft is not None:
            arrays["soft"] = self.soft
        if self.source_index is not None:
            arrays["source_index"] = self.source_index
        meta = {
            "name": self.name,
            "class_names": list(self.class_names),
            "quarantine": [q.to_dict() for q in self.quarantine],
            "stats": self.stats,
        }
        return arrays, meta

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], meta: dict) -> RawData:
        return cls(
            images=arrays["images"],
            labels=arrays["labels"],
            usage=arrays["usage"],
            ids=arrays["ids"],
            name=meta["name"],
            soft=arrays.get("soft"),
            class_names=tuple(meta["class_names"]),
            quarantine=[DataIssue(**q) for q in meta["quarantine"]],
            stats=meta["stats"],
            source_index=arrays.get("source_index"),
        )


# ------------------------------------------------------------------------------------------ base
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

    def cache_options(self) -> dict:
        return {"on_bad_rows": self.on_bad_rows}

    def load(self) -> RawData:
        if not self.cache_dir:
            return self.decode()
        cache = NpzCache(self.cache_dir)
        # the decoding code is part of the key: editing a source's module invalidates its cache entries
        code = file_sha256(inspect.getfile(type(self)))
        key = cache_key(type(self).__name__, {"inputs": self.cache_inputs(), "code": code}, self.cache_options())
        hit = cache.load(self.name, key)
        if hit is not None:
            raw = RawData.from_arrays(*hit)
            if raw.quarantine:
                log.warning("%s: %d bad rows were skipped (cached decode)", self.name, len(raw.quarantine))
            return raw
        raw = self.decode()
        cache.save(self.name, key, *raw.to_arrays())
        return raw


def _require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise FileNotFoundError(
            f"{what} not found: {path} (fetch it with `dvc pull`, point the config at it, "
            "or use the embedded `data=synthetic`)"
        )
    if path.stat().st_size == 0:
        raise DataValidationError(path, "file is empty")
    return path


def _open_text(path: Path) -> io.TextIOBase:
    """Text handle on a plain or gzip CSV (detected by magic bytes); undecodable bytes become U+FFFD."""
    with open(path, "rb") as f:
        magic = f.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt", encoding="utf-8-sig", errors="replace", newline="")
    return open(path, encoding="utf-8-sig", errors="replace", newline="")


@dataclass
class _CsvTable:
    columns: dict[str, list[str]]  # normalised column name -> values of the well-formed records
    lines: np.ndarray  # int64 1-based line number of each well-formed record
    records: np.ndarray  # int64 0-based data-record index of each well-formed record
    n_records: int  # data records in the file (well-formed or not)
    issues: list[DataIssue]  # records with the wrong number of fields


def _read_csv(path: Path, required: Sequence[str], optional: Sequence[str] = ()) -> _CsvTable:
    """Read a CSV with a header; columns are matched case-insensitively after stripping spaces."""
    with _open_text(path) as f:
        reader = csv.reader(f)
        try:
            header = next(reader)
            while not any(h.strip() for h in header):
                header = next(reader)
        except StopIteration:
            raise DataValidationError(path, "file is empty (no header line)") from None
        except (csv.Error, OSError, EOFError) as exc:
            raise DataValidationError(path, f"unreadable CSV ({exc})") from None
        norm = [h.strip().lower() for h in header]
        missing = [c for c in required if c.lower() not in norm]
        if missing:
            raise DataValidationError(
                path, f"bad header: missing column(s) {missing}; header is {header[:12]!r} (expected {list(required)})"
            )
        wanted = [c.lower() for c in (*required, *optional) if c.lower() in norm]
        pos = {c: norm.index(c) for c in wanted}
        cols: dict[str, list[str]] = {c: [] for c in wanted}
        lines: list[int] = []
        records: list[int] = []
        issues: list[DataIssue] = []
        n_fields = len(header)
        n_records = 0
        try:
            for rec in reader:
                if not rec or (len(rec) == 1 and not rec[0].strip()):
                    continue  # blank line
                line = reader.line_num
                if len(rec) != n_fields:
                    issues.append(DataIssue(str(path), f"expected {n_fields} fields, got {len(rec)}", row=line))
                else:
                    for c, i in pos.items():
                        cols[c].append(rec[i])
                    lines.append(line)
                    records.append(n_records)
                n_records += 1
        except (csv.Error, OSError, EOFError) as exc:
            raise DataValidationError(path, f"unreadable CSV near line {reader.line_num} ({exc})") from None
    if n_records == 0:
        raise DataValidationError(path, "file has a header but no data rows")
    return _CsvTable(cols, np.array(lines, np.int64), np.array(records, np.int64), n_records, issues)


# ------------------------------------------------------------------------------------------ pixels
def parse_pixel_strings(
    strings: Sequence[str], n_pixels: int = N_PIXELS, chunk: int = 1024
) -> tuple[np.ndarray, dict[int, str]]:
    """Decode space-separated pixel strings into uint8 [N, n_pixels], vectorised over bytes.

    Returns the pixels (zeros on bad rows) and ``{row index: reason}`` for rows with a wrong count,
    non-numeric tokens or values outside 0..255.
    """
    n = len(strings)
    out = np.zeros((n, n_pixels), np.uint8)
    bad: dict[int, str] = {}
    for start in range(0, n, chunk):
        part = strings[start : start + chunk]
        m = len(part)
        buf = np.frombuffer(("\n".join(part) + "\n").encode("utf-8"), np.uint8)
        newlines = np.flatnonzero(buf == 10)
        if len(newlines) != m:  # a (quoted) field spanning lines: newlines inside it become spaces
            part = [t.replace("\n", " ") for t in part]
            buf = np.frombuffer(("\n".join(part) + "\n").encode("utf-8"), np.uint8)
            newlines = np.flatnonzero(buf == 10)
        digit = (buf >= 48) & (buf <= 57)
        other = ~digit & (buf != 32) & (buf != 10) & (buf != 9) & (buf != 13)
        bad_rows = set(np.searchsorted(newlines, np.flatnonzero(other)).tolist())
        prev = np.empty_like(digit)
        prev[0] = False
        prev[1:] = digit[:-1]
        nxt = np.empty_like(digit)
        nxt[-1] = False
        nxt[:-1] = digit[1:]
        starts = np.flatnonzero(digit & ~prev)
        ends = np.flatnonzero(digit & ~nxt)
        length = ends - starts + 1
        tok_row = np.searchsorted(newlines, starts)
        counts = np.bincount(tok_row, minlength=m)
        vals = buf[starts].astype(np.int32) - 48
        for k in (1, 2):
            sel = np.flatnonzero(length > k)
            vals[sel] = vals[sel] * 10 + (buf[starts[sel] + k].astype(np.int32) - 48)
        long = np.flatnonzero(length > 3)
        if len(long):  # "0255" is 255; anything with 4+ significant digits is out of range
            vals[long] = [min(int(bytes(buf[s : e + 1])), 1 << 20) for s, e in zip(starts[long], ends[long])]
        bad_rows.update(tok_row[vals > 255].tolist())
        bad_rows.update(np.flatnonzero(counts != n_pixels).tolist())
        good = counts == n_pixels
        good[list(bad_rows)] = False
        out[start + np.flatnonzero(good)] = vals[good[tok_row]].reshape(-1, n_pixels)
        for r in sorted(bad_rows):
            bad[start + r] = _diagnose_pixels(part[r], n_pixels)
    return out, bad


def _diagnose_pixels(text: str, n_pixels: int) -> str:
    tokens = text.split()
    if not tokens:
        return "empty pixels field"
    reasons = []
    for i, tok in enumerate(tokens):
        if not (tok.isascii() and tok.isdigit()):
            try:
                value = int(tok)
            except ValueError:
                reasons.append(f"non-numeric pixel value {tok[:20]!r} (value {i + 1})")
                break
            if value < 0:
                reasons.append(f"pixel value {value} out of range 0-255 (value {i + 1})")
                break
            reasons.append(f"non-numeric pixel value {tok[:20]!r} (value {i + 1})")
            break
        if int(tok) > 255:
            reasons.append(f"pixel value {int(tok)} out of range 0-255 (value {i + 1})")
            break
    if len(tokens) != n_pixels:
        reasons.insert(0, f"expected {n_pixels} pixel values, got {len(tokens)}")
    return "; ".join(reasons) or "unparseable pixels field"


# ------------------------------------------------------------------------------------------ FER2013 CSV
USAGE_ALIASES = {
    "training": "train",
    "train": "train",
    "publictest": "val",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "privatetest": "test",
    "test": "test",
}


class Fer2013Csv(Source):
    """FER2013 Kaggle CSV ``emotion,pixels,Usage`` (plain or gzip).

    ``emotion`` is the FER-7 id 0..6; ``pixels`` 2304 space-separated values 0..255 (48x48, row-major);
    ``Usage`` Training/PublicTest/PrivateTest -> train/val/test (train/val/test are accepted too). A file
    without a Usage column is read as all-train (split it with ``split.strategy=stratified``).
    Row ids are ``"<file name>:line <n>"`` with the header on line 1.
    """

    def __init__(
        self, path: str | os.PathLike, on_bad_rows: str = "error", cache_dir: str | None = None, name: str | None = None
    ):
        self.path = Path(path)
        self.on_bad_rows = check_on_bad_rows(on_bad_rows)
        self.cache_dir = cache_dir
        self.name = name or "fer2013"

    def cache_inputs(self) -> object:
        return file_sha256(_require_file(self.path, "FER2013 CSV"))

    def decode(self) -> RawData:
        path = _require_file(self.path, "FER2013 CSV")
        table = _read_csv(path, required=("emotion", "pixels"), optional=("usage",))
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
                u = USAGE_ALIASES.get(value.strip().lower())
                if u is None:
                    reasons.setdefault(i, []).append(
                        f"unknown Usage {value!r} (expected Training, PublicTest or PrivateTest)"
                    )
                else:
                    usage[i] = u
        else:
            log.warning("%s: no Usage column, all rows are train (use split.strategy=stratified)", path)
            usage = np.full(len(table.lines), "train", dtype="<U5")

        pixels, bad_pixels = parse_pixel_strings(table.columns["pixels"])
        for i, reason in bad_pixels.items():
            reasons.setdefault(i, []).append(reason)

        issues = table.issues + [
            DataIssue(str(path), "; ".join(r), row=int(table.lines[i])) for i, r in reasons.items()
        ]
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


# ------------------------------------------------------------------------------------------ image folders
SPLIT_DIRS = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "publictest": "val",
    "test": "test",
    "privatetest": "test",
}
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm")


def decode_image(path: str | os.PathLike) -> np.ndarray:
    """Any image file -> uint8 grayscale [48, 48] (PIL ``L`` conversion, bilinear resize when needed)."""
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        gray = im.convert("L")
    if gray.size != (IMAGE_SIZE, IMAGE_SIZE):
        gray = gray.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR)
    return np.asarray(gray, dtype=np.uint8)


class ImageFolder(Source):
    """Folders of face images, grayscale-converted and resized to 48x48 with PIL.

    Layouts (detected): ``<root>/{train,val,test}/<class>/*`` (the Kaggle image-folder release of FER2013
    has ``train`` and ``test``; ``validation``/``PublicTest``/``PrivateTest`` are recognised too) and the
    generic ``<root>/<class>/*`` whose rows are all train (split later). Class folder names are FER-7
    names, case-insensitive (aliases such as ``happiness``/``anger`` accepted). Bad inputs: unknown class
    folder, empty class folder, unreadable/corrupt image file. Hidden files are ignored; files whose
    extension is not an image extension are reported as bad rows too. The cache key covers every file's
    relative path, size and mtime.
    """

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
            raise DataValidationError(
                self.root, "no class folders found (expected <root>/<class>/* or <root>/train/<class>/*)"
            )
        if any(p.name.lower() in SPLIT_DIRS for p in subdirs):
            out = []
            for split_dir in subdirs:
                usage = SPLIT_DIRS.get(split_dir.name.lower())
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
        for usage, folder in self._class_dirs():
            label = class_id(folder.name) if usage != "?" else None
            if label is None:
                what = "split" if usage == "?" else "class"
                issues.append(
                    DataIssue(
                        root,
                        f"unknown {what} folder {folder.name!r} (expected one of {list(FER_CLASSES)})",
                        path=str(folder),
                    )
                )
                continue
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
                except Exception as exc:  # PIL raises many types for corrupt/truncated files
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
            quarantine=issues,
        )


# ------------------------------------------------------------------------------------------ FER+
FERPLUS_EMOTIONS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt")
FERPLUS_COLUMNS = (*FERPLUS_EMOTIONS, "unknown", "nf")
# FER+ emotion column -> FER-7 id (contempt has no FER-7 class)
FERPLUS_TO_FER = {
    "anger": FER_CLASS_TO_ID["angry"],
    "disgust": FER_CLASS_TO_ID["disgust"],
    "fear": FER_CLASS_TO_ID["fear"],
    "happiness": FER_CLASS_TO_ID["happy"],
    "sadness": FER_CLASS_TO_ID["sad"],
    "surprise": FER_CLASS_TO_ID["surprise"],
    "neutral": FER_CLASS_TO_ID["neutral"],
}


class FerPlus(Source):
    """FER+ crowd labels (``fer2013new.csv``) over the FER2013 pixels (same rows, same order).

    ``fer2013new.csv`` columns: ``Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,
    contempt,unknown,NF`` (10 votes per image in the public release). Rows are joined by position; the
    FER+ Usage must match the FER2013 Usage of the same row. Rows with an empty ``Image name`` were dropped
    by FER+ and are dropped here (counted in ``stats["ferplus_dropped"]["no_image_name"]``).

    Label policy (every drop is counted in ``stats["ferplus_dropped"]``):

    1. ``contempt``: ``drop`` (default) keeps contempt as its own vote: a row where contempt has more votes
       than every FER emotion is dropped, and in soft mode the remaining contempt votes are discarded;
       ``disgust`` adds contempt votes to disgust.
    2. Not a face / unknown: a row is dropped when NF (``not_face``) or ``unknown`` has at least as many
       votes as the best emotion (NF checked first).
    3. ``mode: majority`` (hard labels): the label is the emotion with the most votes. Ties between
       emotions: ``tie_policy: drop`` (default) drops the row, ``first`` keeps the lowest FER-7 id
       (angry < disgust < fear < happy < sad < surprise < neutral; contempt counts as last). The winning
       emotion needs at least ``min_votes`` votes (default 2: one annotator is not a label).
    4. ``mode: soft``: ``soft`` = the vote distribution over the 7 FER classes (contempt per rule 1),
       ``labels`` = its argmax (lowest id on ties; ``tie_policy`` does not apply). Rows with no emotion
       votes or whose best emotion has fewer than ``min_votes`` votes are dropped.
    """

    MODES = ("majority", "soft")

    def __init__(
        self,
        fer2013_path: str | os.PathLike,
        ferplus_path: str | os.PathLike,
        mode: str = "majority",
        tie_policy: str = "drop",
        contempt: str = "drop",
        min_votes: int = 2,
        on_bad_rows: str = "error",
        cache_dir: str | None = None,
        name: str | None = None,
    ):
        if mode not in self.MODES:
            raise ValueError(f"FER+ mode must be one of {self.MODES}, got {mode!r}")
        if tie_policy not in ("drop", "first"):
            raise ValueError(f"tie_policy must be 'drop' or 'first', got {tie_policy!r}")
        if contempt not in ("drop", "disgust"):
            raise ValueError(f"contempt must be 'drop' or 'disgust', got {contempt!r}")
        self.fer2013_path = Path(fer2013_path)
        self.ferplus_path = Path(ferplus_path)
        self.mode, self.tie_policy, self.contempt, self.min_votes = mode, tie_policy, contempt, int(min_votes)
        self.on_bad_rows = check_on_bad_rows(on_bad_rows)
        self.cache_dir = cache_dir
        self.name = name or ("ferplus" if mode == "majority" else "ferplus_soft")

    def cache_inputs(self) -> object:
        return [
            file_sha256(_require_file(self.fer2013_path, "FER2013 CSV")),
            file_sha256(_require_file(self.ferplus_path, "FER+ CSV")),
        ]

    def cache_options(self) -> dict:
        return {
            "on_bad_rows": self.on_bad_rows,
            "mode": self.mode,
            "tie_policy": self.tie_policy,
            "contempt": self.contempt,
            "min_votes": self.min_votes,
        }

    def decode(self) -> RawData:
        base = Fer2013Csv(self.fer2013_path, on_bad_rows=self.on_bad_rows, cache_dir=self.cache_dir).load()
        path = _require_file(self.ferplus_path, "FER+ CSV")
        table = _read_csv(path, required=("usage", "image name", *FERPLUS_COLUMNS))
        n_fer = int(base.stats["n_records"])
        if table.n_records != n_fer:
            raise DataValidationError(
                path,
                f"has {table.n_records} data rows but {self.fer2013_path} has {n_fer}: "
                "the FER+ file must list the FER2013 rows in the same order",
            )
        n = len(table.lines)
        votes = np.zeros((n, len(FERPLUS_COLUMNS)), np.int64)
        reasons: dict[int, list[str]] = {}
        for j, col in enumerate(FERPLUS_COLUMNS):
            for i, value in enumerate(table.columns[col]):
                v = value.strip()
                if v.isascii() and v.isdigit():
                    votes[i, j] = int(v)
                else:
                    reasons.setdefault(i, []).append(f"bad vote count {value!r} in column {col!r}")
        usage = np.array([USAGE_ALIASES.get(u.strip().lower(), "?") for u in table.columns["usage"]])
        for i in np.flatnonzero(usage == "?"):
            reasons.setdefault(int(i), []).append(f"unknown Usage {table.columns['usage'][i]!r}")

        # join on the data-record index: FER2013 rows kept by the base decode
        pos_of_record = np.full(n_fer, -1, np.int64)
        pos_of_record[table.records] = np.arange(n)
        pos = pos_of_record[base.source_index]  # FER+ table position for each FER2013 row (-1: malformed)
        fer_usage_by_pos = {int(p): u for p, u in zip(pos.tolist(), base.usage.tolist()) if p >= 0}
        for i, u in enumerate(usage.tolist()):
            fu = fer_usage_by_pos.get(i)
            if u != "?" and fu is not None and u != fu:
                reasons.setdefault(i, []).append(
                    f"Usage {table.columns['usage'][i]!r} does not match the FER2013 row ({fu})"
                )

        issues = table.issues + [
            DataIssue(str(path), "; ".join(r), row=int(table.lines[i])) for i, r in reasons.items()
        ]
        issues.sort(key=lambda q: q.row or 0)
        raise_if_bad(path, issues, self.on_bad_rows)

        ok_pos = np.ones(n, bool)
        ok_pos[list(reasons)] = False
        rows = np.flatnonzero(pos >= 0)
        rows = rows[ok_pos[pos[rows]]]
        p = pos[rows]
        named = np.array([bool(table.columns["image name"][k].strip()) for k in p.tolist()], bool)
        dropped = {"no_image_name": int((~named).sum())}
        rows, p = rows[named], p[named]
        keep, labels, soft, policy_drops = self._labels(votes[p])
        dropped.update(policy_drops)
        rows, p = rows[keep], p[keep]
        names = [table.columns["image name"][k].strip() for k in p.tolist()]
        ids = np.array([f"{path.name}:line {int(table.lines[k])} ({nm})" for k, nm in zip(p.tolist(), names)])
        return RawData(
            images=base.images[rows],
            labels=labels,
            usage=base.usage[rows],
            ids=ids,
            name=self.name,
            soft=soft,
            quarantine=base.quarantine + issues,
            stats={"n_records": n_fer, "ferplus_dropped": dropped},
            source_index=base.source_index[rows],
        )

    def _labels(self, votes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, dict[str, int]]:
        """Apply the documented policy to vote rows [N, 10] -> (keep mask, labels, soft or None, drop counts)."""
        col = {c: votes[:, j] for j, c in enumerate(FERPLUS_COLUMNS)}
        emo = np.zeros((len(votes), len(FER_CLASSES) + 1), np.int64)  # 7 FER ids + contempt last
        for c, fer_id in FERPLUS_TO_FER.items():
            emo[:, fer_id] = col[c]
        if self.contempt == "disgust":
            emo[:, FER_CLASS_TO_ID["disgust"]] += col["contempt"]
        else:
            emo[:, -1] = col["contempt"]
        top = emo.max(axis=1)
        not_face = (col["nf"] > 0) & (col["nf"] >= top)
        unknown = ~not_face & (col["unknown"] > 0) & (col["unknown"] >= top)
        drops = {"not_face": int(not_face.sum()), "unknown": int(unknown.sum())}
        keep = ~not_face & ~unknown
        if self.mode == "soft":
            emo7 = emo[:, : len(FER_CLASSES)].astype(np.float64)
            total = emo7.sum(axis=1)
            top7 = emo7.max(axis=1)
            is_contempt = keep & (emo[:, -1] > top7)
            keep &= ~is_contempt
            no_votes = keep & (total == 0)
            few = keep & ~no_votes & (top7 < self.min_votes)
            drops.update(
                {
                    "contempt": int(is_contempt.sum()),
                    "no_emotion_votes": int(no_votes.sum()),
                    "min_votes": int(few.sum()),
                }
            )
            keep &= ~no_votes & ~few
            soft = (emo7[keep] / total[keep, None]).astype(np.float32)
            return keep, soft.argmax(axis=1), soft, drops
        winners = emo == top[:, None]
        tie = keep & (winners.sum(axis=1) > 1)
        label = winners.argmax(axis=1)  # first (lowest id) winner
        if self.tie_policy == "drop":
            drops["tie"] = int(tie.sum())
            keep &= ~tie
        is_contempt = keep & (label == len(FER_CLASSES))
        drops["contempt"] = int(is_contempt.sum())
        keep &= ~is_contempt
        few = keep & (top < self.min_votes)
        drops["min_votes"] = int(few.sum())
        keep &= ~few
        return keep, label[keep], None, drops
