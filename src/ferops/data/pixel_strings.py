"""FER2013 ``pixels`` fields (space-separated 0..255 values) -> uint8 arrays, vectorised over bytes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ferops.data.constants import N_PIXELS


def parse_pixel_strings(strings: Sequence[str], n_pixels: int = N_PIXELS, chunk: int = 1024) -> tuple[np.ndarray, dict[int, str]]:
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
