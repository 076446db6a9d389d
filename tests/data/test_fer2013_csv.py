import csv

import numpy as np
import pytest

from ferops.data import DataValidationError, Fer2013Csv, prepare_dataset
from ferops.data.validation import read_quarantine, write_quarantine
from fixtures_data import FER2013_HEADER as HEADER
from fixtures_data import pixel_string, pixels_of


@pytest.mark.parametrize("gz", [False, True])
def test_parses_values_plain_and_gz(small_fer_csv, gz):
    raw = Fer2013Csv(small_fer_csv(gz)).load()
    assert raw.images.dtype == np.uint8 and raw.images.shape == (6, 48, 48)
    np.testing.assert_array_equal(raw.images[0], pixels_of(100))
    np.testing.assert_array_equal(raw.images[5], pixels_of(105))
    assert raw.images[2, 0, 0] == pixels_of(102)[0, 0] and raw.images[2, 47, 47] == pixels_of(102)[47, 47]
    assert raw.labels.tolist() == [0, 3, 6, 1, 5, 4]
    assert raw.labels.dtype == np.int64
    assert raw.usage.tolist() == ["train", "train", "val", "val", "test", "test"]
    name = "fer2013.csv.gz" if gz else "fer2013.csv"
    assert raw.ids[0] == f"{name}:line 2" and raw.ids[5] == f"{name}:line 7"
    assert raw.soft is None and raw.quarantine == []
    assert len(raw.fingerprint) == 64


def test_plain_and_gz_decode_identically(small_fer_csv):
    assert Fer2013Csv(small_fer_csv(False)).load().fingerprint == Fer2013Csv(small_fer_csv(True)).load().fingerprint


def test_missing_usage_column_is_all_train(write_csv):
    path = write_csv("nousage.csv", ["emotion,pixels", f"2,{pixel_string(pixels_of(1))}"])
    raw = Fer2013Csv(path).load()
    assert raw.usage.tolist() == ["train"] and raw.labels.tolist() == [2]


def _bad_file(write_csv, bad_line: str, gz: bool = False):
    good = f"0,{pixel_string(pixels_of(1))},Training"
    return write_csv("bad.csv.gz" if gz else "bad.csv", [HEADER, good, bad_line, good], gz=gz)


PIX = pixels_of(2).reshape(-1).tolist()


@pytest.mark.parametrize(
    "bad_line, reason",
    [
        ("0," + " ".join(map(str, PIX[:-1])) + ",Training", "expected 2304 pixel values, got 2303"),
        ("0," + " ".join(map(str, [*PIX, 5])) + ",Training", "expected 2304 pixel values, got 2305"),
        (
            "0," + " ".join(map(str, PIX[:10])) + " abc " + " ".join(map(str, PIX[11:])) + ",Training",
            "non-numeric pixel value 'abc'",
        ),
        (
            "0," + " ".join(map(str, PIX[:5])) + " 12.5 " + " ".join(map(str, PIX[6:])) + ",Training",
            "non-numeric pixel value '12.5'",
        ),
        ("0," + " ".join(map(str, PIX[:-1])) + " 256,Training", "pixel value 256 out of range 0-255"),
        ("0,-1 " + " ".join(map(str, PIX[1:])) + ",Training", "pixel value -1 out of range 0-255"),
        ("0,,Training", "empty pixels field"),
        ("7," + " ".join(map(str, PIX)) + ",Training", "unknown label '7'"),
        ("x," + " ".join(map(str, PIX)) + ",Training", "unknown label 'x'"),
        ("0," + " ".join(map(str, PIX)) + ",Holdout", "unknown Usage 'Holdout'"),
        ("0," + " ".join(map(str, PIX)) + ",Training,extra", "expected 3 fields, got 4"),
    ],
)
def test_bad_rows_raise_one_error_naming_file_line_reason(write_csv, bad_line, reason):
    path = _bad_file(write_csv, bad_line)
    with pytest.raises(DataValidationError) as err:
        Fer2013Csv(path).load()
    msg = str(err.value)
    assert str(path) in msg
    assert "1 bad row" in msg
    assert f"line 3: {reason}" in msg
    assert [i.row for i in err.value.issues] == [3]


def test_bad_rows_in_gz(write_csv):
    path = _bad_file(write_csv, "9," + " ".join(map(str, PIX)) + ",Training", gz=True)
    with pytest.raises(DataValidationError, match=r"line 3: unknown label '9'"):
        Fer2013Csv(path).load()


def test_many_bad_rows_listing_is_capped(write_csv):
    good = f"0,{pixel_string(pixels_of(1))},Training"
    lines = [HEADER] + [good, "0,1 2 3,Training"] * 15  # bad rows on lines 3, 5, ..., 31
    path = write_csv("many.csv", lines)
    with pytest.raises(DataValidationError) as err:
        Fer2013Csv(path).load()
    msg = str(err.value)
    assert "15 bad rows" in msg and "and 5 more" in msg
    assert "line 21: expected 2304 pixel values, got 3" in msg  # 10th bad row listed
    assert "line 23:" not in msg  # 11th not listed
    assert len(err.value.issues) == 15


@pytest.mark.parametrize(
    "content, reason",
    [
        ("", "file is empty"),
        ("\n\n", "file is empty (no header line)"),
        ("emotion,pixels,Usage\n", "file has a header but no data rows"),
        ("emotion,pixel,Usage\n0,1 2,Training\n", "bad header: missing column(s) ['pixels']"),
        ("0,1 2 3,Training\n", "bad header: missing column(s) ['emotion', 'pixels']"),
    ],
)
def test_file_level_errors(tmp_path, content, reason):
    path = tmp_path / "f.csv"
    path.write_text(content)
    with pytest.raises(DataValidationError) as err:
        Fer2013Csv(path, on_bad_rows="skip").load()  # file-level problems are errors even with skip
    assert str(path) in str(err.value) and reason in str(err.value)


def test_missing_file_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="FER2013 CSV not found"):
        Fer2013Csv(tmp_path / "nope.csv").load()


def test_skip_quarantines_bad_rows(write_csv, tmp_path):
    good = [f"{k % 2},{pixel_string(pixels_of(k))},Training" for k in range(4)]
    lines = [
        HEADER,
        good[0],
        "0,1 2 3,Training",
        good[1],
        "9," + " ".join(map(str, PIX)) + ",PublicTest",
        good[2],
        good[3],
    ]
    path = write_csv("mixed.csv", lines)
    raw = Fer2013Csv(path, on_bad_rows="skip").load()
    assert len(raw) == 4
    np.testing.assert_array_equal(raw.images[1], pixels_of(1))
    assert [q.row for q in raw.quarantine] == [3, 5]
    assert "expected 2304 pixel values, got 3" in raw.quarantine[0].reason
    assert "unknown label '9'" in raw.quarantine[1].reason

    qpath = tmp_path / "out" / "quarantine.csv"
    with pytest.warns(UserWarning, match="no test rows"):
        prepared = prepare_dataset(raw, split={"strategy": "stratified", "fractions": [0.5, 0.5, 0.0]}, quarantine_path=qpath)
    assert prepared.quarantined == 2
    assert prepared.report["quarantine"]["count"] == 2
    with qpath.open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["file"], r["row"]) for r in rows] == [(str(path), "3"), (str(path), "5")]
    assert "got 3" in rows[0]["reason"]
    assert [q.row for q in read_quarantine(qpath)] == [3, 5]


def test_quarantine_json(write_csv, tmp_path):
    path = write_csv("m.csv", [HEADER, f"0,{pixel_string(pixels_of(0))},Training", "0,1,Training"])
    raw = Fer2013Csv(path, on_bad_rows="skip").load()
    qpath = tmp_path / "q.json"
    write_quarantine(raw.quarantine, qpath)
    assert [q.row for q in read_quarantine(qpath)] == [3]


def test_cache_hit_skips_decode(small_fer_csv, tmp_path, monkeypatch):
    path = small_fer_csv(True)
    cache = tmp_path / "cache"
    first = Fer2013Csv(path, cache_dir=cache).load()
    assert len(list(cache.glob("*.npz"))) == 1

    def boom(self):
        raise AssertionError("decode called on a cache hit")

    monkeypatch.setattr(Fer2013Csv, "decode", boom)
    second = Fer2013Csv(path, cache_dir=cache).load()
    assert second.fingerprint == first.fingerprint
    assert second.ids.tolist() == first.ids.tolist() and second.usage.tolist() == first.usage.tolist()
    # another option is another key
    with pytest.raises(AssertionError, match="decode called"):
        Fer2013Csv(path, cache_dir=cache, on_bad_rows="skip").load()


def test_cache_misses_when_file_changes(write_csv, fer_rows, tmp_path):
    cache = tmp_path / "cache"
    path = write_csv("c.csv", fer_rows([(0, "Training", 1)]))
    assert Fer2013Csv(path, cache_dir=cache).load().labels.tolist() == [0]
    write_csv("c.csv", fer_rows([(4, "Training", 1)]))
    assert Fer2013Csv(path, cache_dir=cache).load().labels.tolist() == [4]


def test_cache_keeps_quarantine(write_csv, tmp_path):
    path = write_csv("q.csv", [HEADER, f"0,{pixel_string(pixels_of(0))},Training", "0,1,Training"])
    cache = tmp_path / "cache"
    Fer2013Csv(path, on_bad_rows="skip", cache_dir=cache).load()
    again = Fer2013Csv(path, on_bad_rows="skip", cache_dir=cache).load()
    assert [q.row for q in again.quarantine] == [3] and len(again) == 1


def test_bom_crlf_and_quoted_pixels(tmp_path):
    line = f'5,"{pixel_string(pixels_of(7))}",PrivateTest'
    path = tmp_path / "excel.csv"
    path.write_bytes(("\ufeff" + HEADER + "\r\n" + line + "\r\n").encode("utf-8"))
    raw = Fer2013Csv(path).load()
    assert raw.labels.tolist() == [5] and raw.usage.tolist() == ["test"]
    np.testing.assert_array_equal(raw.images[0], pixels_of(7))


def test_cache_key_covers_the_shared_decoding_modules():
    """The CSV reader and pixel parser live in their own modules: editing them must still miss the cache."""
    from ferops.data import csv_reader, fer2013, pixel_strings
    from ferops.data.cache import file_sha256

    digest = Fer2013Csv("unused.csv").code_digest()
    for module in (fer2013, csv_reader, pixel_strings):
        assert file_sha256(module.__file__) in digest


def test_old_import_path_still_names_the_sources():
    """Configs (`_target_: ferops.data.sources.Fer2013Csv`) and stored checkpoints name the old module."""
    from ferops.data import fer2013, ferplus, image_folder, raw, sources

    assert sources.Fer2013Csv is fer2013.Fer2013Csv and sources.FerPlus is ferplus.FerPlus
    assert sources.ImageFolder is image_folder.ImageFolder and sources.RawData is raw.RawData
    assert sources.decode_image is image_folder.decode_image and callable(sources.parse_pixel_strings)
