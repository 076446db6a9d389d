"""Validation of decoded data: bad-row errors, quarantine reports and duplicate images.

Every source checks its input and collects one `DataIssue` per bad row (CSV line or image path).
With ``on_bad_rows="error"`` (the default) the source stops with ONE `DataValidationError` that names
the file, the first `MAX_LISTED` bad rows with their reasons and the total count. With
``on_bad_rows="skip"`` the bad rows are left out, kept on ``RawData.quarantine`` and the pipeline writes
them to a quarantine report (`write_quarantine`). Row numbers are 1-based line numbers of the CSV file,
counting the header as line 1.

Duplicates: each decoded image gets a hash of its bytes (`image_hashes`); `duplicate_report` counts
groups of byte-identical images across and within splits, and within-split groups with conflicting labels.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

ON_BAD_ROWS = ("error", "skip")
MAX_LISTED = 10


class DataValidationError(ValueError):
    """Input data failed validation. ``issues`` holds every `DataIssue` found, ``path`` the file."""

    def __init__(self, path: str | os.PathLike, issues: Sequence[DataIssue] | str):
        self.path = str(path)
        if isinstance(issues, str):  # a file-level problem (empty file, bad header, ...)
            self.issues: list[DataIssue] = [DataIssue(file=self.path, reason=issues)]
            super().__init__(f"{self.path}: {issues}")
            return
        self.issues = list(issues)
        n = len(self.issues)
        lines = [f"  {issue.where()}: {issue.reason}" for issue in self.issues[:MAX_LISTED]]
        more = f"\n  ... and {n - MAX_LISTED} more (first {MAX_LISTED} of {n} shown)" if n > MAX_LISTED else ""
        super().__init__(
            f"{self.path}: {n} bad row{'s' if n != 1 else ''} "
            f"(on_bad_rows=error; use on_bad_rows=skip to quarantine them and go on):\n" + "\n".join(lines) + more
        )


@dataclass(frozen=True)
class DataIssue:
    """One bad row: ``row`` is the 1-based CSV line number (header = line 1), ``path`` an image or folder."""

    file: str
    reason: str
    row: int | None = None
    path: str | None = None

    def where(self) -> str:
        if self.row is not None:
            return f"line {self.row}"
        return self.path or self.file

    def to_dict(self) -> dict:
        return asdict(self)


def check_on_bad_rows(value: str) -> str:
    if value not in ON_BAD_ROWS:
        raise ValueError(f"on_bad_rows must be one of {ON_BAD_ROWS}, got {value!r}")
    return value


def raise_if_bad(path: str | os.PathLike, issues: Sequence[DataIssue], on_bad_rows: str) -> list[DataIssue]:
    """Raise one DataValidationError for ``issues`` unless ``on_bad_rows == "skip"``; return them."""
    if issues and check_on_bad_rows(on_bad_rows) == "error":
        raise DataValidationError(path, issues)
    if issues:
        log.warning("%s: skipped %d bad rows (on_bad_rows=skip)", path, len(issues))
    return list(issues)


def write_quarantine(issues: Iterable[DataIssue], path: str | os.PathLike) -> Path:
    """Write the quarantine report: JSON list when ``path`` ends in .json, else CSV (file,row,path,reason)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    records = [issue.to_dict() for issue in issues]
    if path.suffix.lower() == ".json":
        path.write_text(json.dumps(records, indent=2) + "\n")
    else:
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["file", "row", "path", "reason"])
            writer.writeheader()
            writer.writerows(records)
    return path


def read_quarantine(path: str | os.PathLike) -> list[DataIssue]:
    """Read a report written by `write_quarantine`."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        return [DataIssue(**r) for r in json.loads(path.read_text())]
    with path.open(newline="") as f:
        return [
            DataIssue(file=r["file"], reason=r["reason"], row=int(r["row"]) if r["row"] else None, path=r["path"] or None)
            for r in csv.DictReader(f)
        ]


def summarize_issues(issues: Sequence[DataIssue]) -> dict:
    """Counts by reason kind (text before the first ':' or digit), for reports."""
    kinds = Counter(issue.reason.split(":")[0].split(" (")[0] for issue in issues)
    return {"count": len(issues), "by_reason": dict(sorted(kinds.items()))}


# ----------------------------------------------------------------------------------------- duplicates
def image_hashes(images: np.ndarray) -> np.ndarray:
    """One hex digest (blake2b-128 of the raw bytes) per image of a uint8 [N, H, W] array."""
    flat = np.ascontiguousarray(images).reshape(len(images), -1)
    return np.array([hashlib.blake2b(row.tobytes(), digest_size=16).hexdigest() for row in flat], dtype="<U32")


def duplicate_report(
    hashes: Mapping[str, np.ndarray],
    labels: Mapping[str, np.ndarray],
    ids: Mapping[str, np.ndarray],
    max_examples: int = 5,
) -> dict:
    """Groups of byte-identical images over the given splits (name -> per-row arrays).

    Returns a JSON-ready dict: ``n_groups`` (hashes seen on 2+ rows), ``n_rows_in_groups``,
    ``cross_split`` ("train/val": groups present in both), ``within_split`` (groups with 2+ rows inside one split),
    ``conflicting_labels`` (within-split groups whose rows disagree on the label), and a few example id lists.
    """
    members: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for split, hs in hashes.items():
        for i, h in enumerate(hs.tolist()):
            members[h].append((split, i))
    names = list(hashes)
    cross = {f"{a}/{b}": 0 for k, a in enumerate(names) for b in names[k + 1 :]}
    within = dict.fromkeys(names, 0)
    conflicts = dict.fromkeys(names, 0)
    n_groups = n_rows = 0
    examples: list[list[str]] = []
    conflict_examples: list[list[str]] = []
    for rows in members.values():
        if len(rows) < 2:
            continue
        n_groups += 1
        n_rows += len(rows)
        by_split: dict[str, list[int]] = defaultdict(list)
        for split, i in rows:
            by_split[split].append(i)
        present = [s for s in names if s in by_split]
        for k, a in enumerate(present):
            for b in present[k + 1 :]:
                cross[f"{a}/{b}"] += 1
        for split, idx in by_split.items():
            if len(idx) > 1:
                within[split] += 1
                if len(set(labels[split][idx].tolist())) > 1:
                    conflicts[split] += 1
                    if len(conflict_examples) < max_examples:
                        conflict_examples.append([f"{ids[split][i]} (label {int(labels[split][i])})" for i in idx[:max_examples]])
        if len(examples) < max_examples:
            examples.append([f"{s}:{ids[s][i]}" for s, i in rows[:max_examples]])
    return {
        "n_groups": n_groups,
        "n_rows_in_groups": n_rows,
        "cross_split": cross,
        "within_split": within,
        "conflicting_labels": conflicts,
        "examples": examples,
        "conflict_examples": conflict_examples,
    }
