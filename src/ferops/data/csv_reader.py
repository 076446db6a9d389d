"""Reading the CSV files sources decode: header matching, gzip detection, malformed records as `DataIssue`s."""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ferops.data.validation import DataIssue, DataValidationError


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise FileNotFoundError(
            f"{what} not found: {path} (fetch it with `dvc pull`, point the config at it, or use the embedded `data=synthetic`)"
        )
    if path.stat().st_size == 0:
        raise DataValidationError(path, "file is empty")
    return path


def open_text(path: Path) -> io.TextIOBase:
    """Text handle on a plain or gzip CSV (detected by magic bytes); undecodable bytes become U+FFFD."""
    with open(path, "rb") as f:
        magic = f.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt", encoding="utf-8-sig", errors="replace", newline="")
    return open(path, encoding="utf-8-sig", errors="replace", newline="")


@dataclass
class CsvTable:
    columns: dict[str, list[str]]  # normalised column name -> values of the well-formed records
    lines: np.ndarray  # int64 1-based line number of each well-formed record
    records: np.ndarray  # int64 0-based data-record index of each well-formed record
    n_records: int  # data records in the file (well-formed or not)
    issues: list[DataIssue]  # records with the wrong number of fields


def read_csv(path: Path, required: Sequence[str], optional: Sequence[str] = ()) -> CsvTable:
    """Read a CSV with a header; columns are matched case-insensitively after stripping spaces."""
    with open_text(path) as f:
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
    return CsvTable(cols, np.array(lines, np.int64), np.array(records, np.int64), n_records, issues)
