"""Tiny fixtures written to tmp_path (formats from tests/fixtures_data.py; no real data)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures_data import fer2013_lines, write_image_tree, write_text


@pytest.fixture
def write_csv(tmp_path):
    """write_csv(name, lines, gz=False) -> path under tmp_path; ``lines`` include the header."""

    def _write(name: str, lines: list[str], gz: bool = False) -> Path:
        return write_text(tmp_path / name, lines, gz=gz)

    return _write


@pytest.fixture
def fer_rows():
    """fer_rows([(label, Usage, pixel seed), ...]) -> CSV lines with header."""
    return fer2013_lines


@pytest.fixture
def small_fer_csv(write_csv):
    """small_fer_csv(gz) -> 6 rows: 2 Training, 2 PublicTest, 2 PrivateTest; labels 0,3,6,1,5,4; seeds 100..105."""
    specs = [
        (0, "Training", 100),
        (3, "Training", 101),
        (6, "PublicTest", 102),
        (1, "PublicTest", 103),
        (5, "PrivateTest", 104),
        (4, "PrivateTest", 105),
    ]

    def _make(gz: bool = False) -> Path:
        return write_csv("fer2013.csv.gz" if gz else "fer2013.csv", fer2013_lines(specs), gz=gz)

    return _make


@pytest.fixture
def image_tree(tmp_path):
    """image_tree(layout, root_name="faces") -> root (see fixtures_data.write_image_tree)."""

    def _make(layout: dict, root_name: str = "faces") -> Path:
        return write_image_tree(tmp_path / root_name, layout)

    return _make
