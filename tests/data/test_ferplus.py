import numpy as np
import pytest

from ferops.data import DataValidationError, FerPlus
from fixtures_data import FERPLUS_HEADER, ferplus_line, pixels_of, write_fer2013_csv, write_text

# (FER2013 label, Usage, FER+ image name, votes)
ROWS = [
    (3, "Training", "fer0.png", {"happiness": 8, "neutral": 2}),  # line 2: happy
    (0, "Training", "", {"NF": 10}),  # line 3: dropped by FER+ (no image name)
    (0, "Training", "fer2.png", {"NF": 6, "anger": 4}),  # line 4: not a face
    (4, "Training", "fer3.png", {"unknown": 5, "sadness": 5}),  # line 5: unknown >= best emotion
    (0, "Training", "fer4.png", {"anger": 4, "disgust": 4, "unknown": 2}),  # line 6: tie angry/disgust
    (1, "Training", "fer5.png", {"contempt": 6, "disgust": 4}),  # line 7: contempt plurality
    (2, "Training", "fer6.png", {"fear": 1}),  # line 8: one vote only
    (6, "PublicTest", "fer7.png", {"neutral": 5, "sadness": 3, "fear": 2}),  # line 9: neutral
]


@pytest.fixture
def ferplus_files(tmp_path):
    def _make(rows=ROWS, ferplus_lines=None):
        fer = write_fer2013_csv(tmp_path / "fer2013.csv.gz", [(lab, use, 200 + i) for i, (lab, use, _, _) in enumerate(rows)])
        lines = ferplus_lines or [FERPLUS_HEADER] + [ferplus_line(use, name, votes) for _, use, name, votes in rows]
        return fer, write_text(tmp_path / "fer2013new.csv", lines)

    return _make


def test_majority_default_policy(ferplus_files):
    fer, fp = ferplus_files()
    raw = FerPlus(fer, fp).load()
    assert raw.labels.tolist() == [3, 6]
    np.testing.assert_array_equal(raw.images[0], pixels_of(200))
    np.testing.assert_array_equal(raw.images[1], pixels_of(207))
    assert raw.usage.tolist() == ["train", "val"]
    assert raw.ids.tolist() == ["fer2013new.csv:line 2 (fer0.png)", "fer2013new.csv:line 9 (fer7.png)"]
    assert raw.soft is None
    assert raw.stats["ferplus_dropped"] == {
        "no_image_name": 1,
        "not_face": 1,
        "unknown": 1,
        "tie": 1,
        "contempt": 1,
        "min_votes": 1,
    }


def test_majority_configurable_policy(ferplus_files):
    fer, fp = ferplus_files()
    raw = FerPlus(fer, fp, tie_policy="first", contempt="disgust", min_votes=1).load()
    # tie angry/disgust -> angry (lowest id); contempt counted as disgust; a single fear vote is enough
    assert raw.labels.tolist() == [3, 0, 1, 2, 6]
    assert "tie" not in raw.stats["ferplus_dropped"]
    assert raw.stats["ferplus_dropped"]["contempt"] == 0 and raw.stats["ferplus_dropped"]["min_votes"] == 0


def test_soft_mode_distributions(ferplus_files):
    fer, fp = ferplus_files()
    raw = FerPlus(fer, fp, mode="soft").load()
    # kept: happy row, tie row (kept in soft mode), neutral row; contempt plurality and single vote dropped
    assert raw.labels.tolist() == [3, 0, 6]
    assert raw.soft.dtype == np.float32 and raw.soft.shape == (3, 7)
    np.testing.assert_allclose(raw.soft.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(raw.soft[0], [0, 0, 0, 0.8, 0, 0, 0.2], atol=1e-6)
    np.testing.assert_allclose(raw.soft[1], [0.5, 0.5, 0, 0, 0, 0, 0], atol=1e-6)  # unknown votes not in soft
    np.testing.assert_allclose(raw.soft[2], [0, 0, 0.2, 0, 0.3, 0, 0.5], atol=1e-6)
    assert raw.stats["ferplus_dropped"]["contempt"] == 1 and raw.stats["ferplus_dropped"]["min_votes"] == 1


def test_soft_contempt_as_disgust(ferplus_files):
    fer, fp = ferplus_files()
    raw = FerPlus(fer, fp, mode="soft", contempt="disgust").load()
    row = raw.ids.tolist().index("fer2013new.csv:line 7 (fer5.png)")
    np.testing.assert_allclose(raw.soft[row], [0, 1, 0, 0, 0, 0, 0])


def test_fer2013_mode_keeps_fer2013_rows_and_labels_and_blends_the_votes(ferplus_files):
    """``mode: fer2013``: every FER2013 row, id and label as ``Fer2013Csv`` gives them (same split, val
    and test on the original labels); rows with usable votes get (1 - w) one-hot + w votes, the rest one-hot."""
    from ferops.data import Fer2013Csv

    fer, fp = ferplus_files()
    base = Fer2013Csv(fer).load()
    raw = FerPlus(fer, fp, mode="fer2013", vote_weight=0.25).load()
    assert raw.labels.tolist() == [r[0] for r in ROWS] == base.labels.tolist()
    assert raw.ids.tolist() == base.ids.tolist() and raw.usage.tolist() == base.usage.tolist()
    np.testing.assert_array_equal(raw.images, base.images)
    one_hot = np.eye(7)[raw.labels]
    np.testing.assert_allclose(raw.soft[0], 0.75 * one_hot[0] + 0.25 * np.array([0, 0, 0, 0.8, 0, 0, 0.2]), atol=1e-6)
    # line 6 (tie, unknown votes discarded), line 7 (contempt votes discarded), line 8 (one fear vote)
    np.testing.assert_allclose(raw.soft[4], 0.75 * one_hot[4] + 0.25 * np.array([0.5, 0.5, 0, 0, 0, 0, 0]), atol=1e-6)
    np.testing.assert_allclose(raw.soft[5], 0.75 * one_hot[5] + 0.25 * one_hot[5], atol=1e-6)
    np.testing.assert_allclose(raw.soft[6], one_hot[6], atol=1e-6)
    np.testing.assert_allclose(raw.soft[7], 0.75 * one_hot[7] + 0.25 * np.array([0, 0, 0.2, 0, 0.3, 0, 0.5]), atol=1e-6)
    # no image name, not a face, unknown >= best: the label alone
    for row in (1, 2, 3):
        np.testing.assert_allclose(raw.soft[row], one_hot[row])
    assert raw.stats["ferplus_targets"] == {"with_votes": 5, "label_only": 3}
    assert (raw.soft.argmax(axis=1) == raw.labels).all()
    with pytest.raises(ValueError, match=r"vote_weight must be in \[0, 0.5\)"):
        FerPlus(fer, fp, mode="fer2013", vote_weight=0.5)
    with pytest.raises(ValueError, match="contempt must be drop or disgust"):
        FerPlus(fer, fp, mode="fer2013", contempt="keep")


def test_contempt_kept_as_the_eighth_class(ferplus_files):
    """``contempt: keep`` (the ferplus8 class set): contempt rows stay, labelled as the source's 8th class."""
    fer, fp = ferplus_files()
    raw = FerPlus(fer, fp, contempt="keep").load()
    assert raw.class_names == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral", "contempt")
    assert [raw.class_names[i] for i in raw.labels] == ["happy", "contempt", "neutral"]
    assert raw.stats["ferplus_dropped"]["contempt"] == 0 and raw.stats["ferplus_dropped"]["tie"] == 1
    soft = FerPlus(fer, fp, mode="soft", contempt="keep").load()
    assert soft.soft.shape == (4, 8) and soft.stats["ferplus_dropped"]["contempt"] == 0
    row = soft.ids.tolist().index("fer2013new.csv:line 7 (fer5.png)")
    np.testing.assert_allclose(soft.soft[row], [0, 0.4, 0, 0, 0, 0, 0, 0.6], atol=1e-6)
    with pytest.raises(ValueError, match="contempt must be one of"):
        FerPlus(fer, fp, contempt="merge")


def test_row_count_mismatch(ferplus_files):
    fer, fp = ferplus_files(ferplus_lines=[FERPLUS_HEADER, ferplus_line("Training", "a.png", {"neutral": 10})])
    with pytest.raises(DataValidationError, match=r"has 1 data rows but .* has 8"):
        FerPlus(fer, fp).load()


def test_bad_votes_and_usage_mismatch(ferplus_files):
    lines = [FERPLUS_HEADER] + [ferplus_line(use, name, votes) for _, use, name, votes in ROWS]
    lines[1] = lines[1].replace("Training,fer0.png,2", "Training,fer0.png,two")
    lines[8] = lines[8].replace("PublicTest", "Training")
    fer, fp = ferplus_files(ferplus_lines=lines)
    with pytest.raises(DataValidationError) as err:
        FerPlus(fer, fp).load()
    msg = str(err.value)
    assert str(fp) in msg and "2 bad rows" in msg
    assert "line 2: bad vote count 'two' in column 'neutral'" in msg
    assert "line 9: Usage 'Training' does not match the FER2013 row (val)" in msg
    raw = FerPlus(fer, fp, on_bad_rows="skip").load()
    assert len(raw) == 0  # the two kept rows (lines 2 and 9) were the bad ones
    assert [q.row for q in raw.quarantine] == [2, 9]


def test_missing_ferplus_column(ferplus_files):
    fer, fp = ferplus_files(ferplus_lines=["Usage,Image name,neutral", "Training,a.png,10"])
    with pytest.raises(DataValidationError, match=r"bad header: missing column\(s\) \['happiness'"):
        FerPlus(fer, fp).load()


def test_bad_options():
    with pytest.raises(ValueError, match="mode"):
        FerPlus("a", "b", mode="vote")
    with pytest.raises(ValueError, match="tie_policy"):
        FerPlus("a", "b", tie_policy="random")


def test_ferplus_cache(ferplus_files, tmp_path, monkeypatch):
    fer, fp = ferplus_files()
    cache = tmp_path / "cache"
    first = FerPlus(fer, fp, mode="soft", cache_dir=cache).load()
    monkeypatch.setattr(FerPlus, "decode", lambda self: (_ for _ in ()).throw(AssertionError("decoded")))
    second = FerPlus(fer, fp, mode="soft", cache_dir=cache).load()
    np.testing.assert_array_equal(second.soft, first.soft)
    assert second.stats == first.stats
