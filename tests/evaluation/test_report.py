"""Report writers: every file is written, with the content DVC, MLflow and people expect."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from ferops.evaluation import classification_metrics, write_data_report, write_evaluation_report
from ferops.evaluation.report import classification_report_text, data_stats

NAMES = ["angry", "happy", "sad"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
EVAL_FILES = {
    "metrics.json",
    "confusion.csv",
    "confusion.json",
    "confusion_matrix.png",
    "per_class_accuracy.png",
    "reliability.png",
    "reliability.json",
    "mistakes.png",
    "classification_report.txt",
}

# The 3-class example of test_metrics.py: y_pred = argmax(probs).
Y_TRUE = np.array([0, 0, 0, 0, 1, 1, 2, 2])
Y_PRED = np.array([0, 0, 0, 1, 1, 0, 2, 0])


def _probs(pred: np.ndarray, n: int = 3, conf: float = 0.8) -> np.ndarray:
    p = np.full((pred.size, n), (1 - conf) / (n - 1))
    p[np.arange(pred.size), pred] = conf
    return p


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("eval")
    images = np.random.default_rng(0).integers(0, 256, (Y_TRUE.size, 48, 48), dtype=np.uint8)
    result = write_evaluation_report(_probs(Y_PRED), Y_TRUE, images, NAMES, out, n_bins=5, title="val")
    return out, result


def test_writes_every_file(report: tuple[Path, dict]) -> None:
    out, result = report
    assert {p.name for p in out.iterdir()} == EVAL_FILES
    assert {Path(p).name for p in result["files"]} == EVAL_FILES
    assert all(Path(p).parent == out for p in result["files"])
    for name in EVAL_FILES:
        if name.endswith(".png"):
            assert (out / name).read_bytes()[:8] == PNG_MAGIC, name


def test_metrics_json_is_the_flat_dict(report: tuple[Path, dict]) -> None:
    out, result = report
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk == result["metrics"]
    assert on_disk == classification_metrics(_probs(Y_PRED), Y_TRUE, NAMES, n_bins=5)
    assert all(isinstance(v, float) for v in on_disk.values())
    assert {"accuracy", "macro_f1", "nll", "ece", "precision/sad", "recall/sad", "f1/sad", "support/sad"} <= set(on_disk)
    assert on_disk["accuracy"] == pytest.approx(5 / 8)
    assert on_disk["macro_f1"] == pytest.approx(11 / 18)


def test_confusion_csv_and_json_one_row_per_sample(report: tuple[Path, dict]) -> None:
    out, _ = report
    with (out / "confusion.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == Y_TRUE.size
    assert list(rows[0]) == ["actual", "predicted"]
    expected = [{"actual": NAMES[t], "predicted": NAMES[p]} for t, p in zip(Y_TRUE, Y_PRED, strict=True)]
    assert rows == expected
    assert json.loads((out / "confusion.json").read_text()) == expected


def test_reliability_json(report: tuple[Path, dict]) -> None:
    out, result = report
    rows = json.loads((out / "reliability.json").read_text())
    assert len(rows) == 5
    assert sum(r["count"] for r in rows) == Y_TRUE.size
    # every sample at confidence 0.8 -> bin (0.6, 0.8]; 5 of 8 correct
    full = [r for r in rows if r["count"]]
    assert len(full) == 1 and full[0]["bin"] == 3
    assert full[0]["confidence"] == pytest.approx(0.8) and full[0]["accuracy"] == pytest.approx(5 / 8)
    assert rows[0]["confidence"] is None
    assert abs(full[0]["accuracy"] - full[0]["confidence"]) == pytest.approx(result["metrics"]["ece"])


def test_classification_report_text(report: tuple[Path, dict]) -> None:
    out, _ = report
    text = (out / "classification_report.txt").read_text()
    assert text.startswith("val\n")
    lines = {line.split()[0]: line.split() for line in text.splitlines() if line.strip()}
    assert lines["angry"][1:] == ["0.6000", "0.7500", "0.6667", "4"]
    assert lines["sad"][1:] == ["1.0000", "0.5000", "0.6667", "2"]
    assert lines["accuracy"][1:] == ["0.6250", "8"]
    assert lines["macro"][2:] == ["0.7000", "0.5833", "0.6111", "8"]  # (3/5+1/2+1)/3, 7/12, 11/18
    assert lines["weighted"][2:5] == ["0.6750", "0.6250", "0.6250"]  # (4*.6 + 2*.5 + 2*1)/8, 5/8, 5/8
    assert "nll" in lines and "ece" in lines


def test_classification_report_names_classes_left_out_of_macro() -> None:
    text = classification_report_text([0, 1], [0, 1], ["a", "b", "c"])
    assert "not in macro avg (no samples, never predicted): c" in text


def test_prefix_and_no_images(tmp_path: Path) -> None:
    result = write_evaluation_report(_probs(Y_PRED), Y_TRUE, None, NAMES, tmp_path, prefix="ext_")
    names = {p.name for p in tmp_path.iterdir()}
    assert names == {f"ext_{n}" for n in EVAL_FILES - {"mistakes.png"}}
    assert set(result["metrics"]) == set(json.loads((tmp_path / "ext_metrics.json").read_text()))


def test_report_refuses_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="softmax"):
        write_evaluation_report(np.ones((8, 3)), Y_TRUE, None, NAMES, tmp_path)
    with pytest.raises(ValueError, match="images"):
        write_evaluation_report(_probs(Y_PRED), Y_TRUE, np.zeros((3, 48, 48), np.uint8), NAMES, tmp_path)


# ----------------------------------------------------------------------------- data report


def test_data_stats_counts() -> None:
    stats = data_stats({"train": [0, 0, 2], "val": [1]}, NAMES)
    assert stats == {
        "n_images/train": 3.0,
        "count/train/angry": 2.0,
        "count/train/happy": 0.0,
        "count/train/sad": 1.0,
        "n_images/val": 1.0,
        "count/val/angry": 0.0,
        "count/val/happy": 1.0,
        "count/val/sad": 0.0,
    }
    with pytest.raises(ValueError, match="outside"):
        data_stats({"train": [0, 3]}, NAMES)


def test_write_data_report(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    train = (rng.integers(0, 256, (9, 48, 48), dtype=np.uint8), np.array([0, 1, 2] * 3))
    val = (rng.integers(0, 256, (3, 48, 48), dtype=np.uint8), np.array([0, 1, 1]))
    test = (None, np.array([2, 2]))
    result = write_data_report(
        {"train": train, "val": val, "test": test},
        NAMES,
        tmp_path,
        stats={"fingerprint": "abc", "dropped_rows": 2},
        n_per_class=2,
    )
    assert {p.name for p in tmp_path.iterdir()} == {"data_stats.json", "class_distribution.png", "samples.png"}
    assert [Path(p).name for p in result["files"]] == ["data_stats.json", "class_distribution.png", "samples.png"]
    written = json.loads((tmp_path / "data_stats.json").read_text())
    assert written == result["stats"]
    assert written["fingerprint"] == "abc" and written["dropped_rows"] == 2
    assert written["count/train/sad"] == 3.0 and written["n_images/test"] == 2.0
    for name in ("class_distribution.png", "samples.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG_MAGIC


def test_write_data_report_without_images(tmp_path: Path) -> None:
    result = write_data_report({"train": (None, np.array([0, 1]))}, NAMES, tmp_path, prefix="p_")
    assert [Path(p).name for p in result["files"]] == ["p_data_stats.json", "p_class_distribution.png"]
    with pytest.raises(ValueError, match="no images"):
        write_data_report({"train": (None, np.array([0, 1]))}, NAMES, tmp_path, sample_split="train")
