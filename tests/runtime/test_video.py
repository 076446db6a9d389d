"""`ferops predict` on videos and a webcam: the frame loop, face tracks and probability smoothing
(`ferops.runtime.video`), on a clip made of the scikit-image astronaut's face pasted into frames."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from ferops.cli import build_parser, main
from ferops.runtime import SHIPPED_BUNDLE, BundleModel, FacePredictor
from ferops.runtime.predictor import PredictSummary, annotated_path
from ferops.runtime.video import (
    DEFAULT_EXPIRE_AFTER,
    DEFAULT_SMOOTH,
    DEFAULT_TRACK_IOU,
    FaceTracker,
    VideoOptions,
    open_video,
    predict_video,
)

cv2 = pytest.importorskip("cv2")
skimage_data = pytest.importorskip("skimage.data")

FPS, SIZE, FRAMES = 10.0, (320, 240), 20
BLANK = range(8, 11)  # no face at all: face A misses 3 frames (< EXPIRE), keeps its track
B_ABSENT = range(6, 14)  # face B misses 8 frames (>= EXPIRE): it comes back as a new track
EXPIRE = 5
REAL_CAPTURE = cv2.VideoCapture  # the tests' fake camera replaces cv2.VideoCapture for camera indices


def _write_clip(path: Path) -> Path:
    """Face A (the astronaut) moving right 3 px a frame on the left, face B (mirrored) still on the right."""
    face = cv2.resize(skimage_data.astronaut()[40:200, 150:300], (110, 117))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), FPS, SIZE)
    for i in range(FRAMES):
        frame = np.full((SIZE[1], SIZE[0], 3), 90, np.uint8)
        if i not in BLANK:
            frame[60:177, 10 + 3 * i : 120 + 3 * i] = face
            if i not in B_ABSENT:
                frame[60:177, 195:305] = face[:, ::-1]
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))  # OpenCV writes BGR
    writer.release()
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return _write_clip(tmp_path_factory.mktemp("video") / "clip.mp4")


@pytest.fixture(scope="module")
def predictor() -> FacePredictor:
    return FacePredictor()  # the shipped bundle: no training


def _run(predictor: FacePredictor, clip: Path, **options) -> tuple[list[dict], PredictSummary]:
    out, summary = io.StringIO(), PredictSummary()
    with open_video(clip) as source:
        predict_video(predictor, source, out, summary, VideoOptions(expire_after=EXPIRE, **options))
    return [json.loads(line) for line in out.getvalue().splitlines()], summary


@pytest.fixture(scope="module")
def smoothed(predictor, clip):
    return _run(predictor, clip, smooth=0.3)


def _side(face: dict) -> str:
    return "A" if face["box"][0] < SIZE[0] / 2 - 20 else "B"


# -- the tracker on synthetic boxes, values computed by hand --------------------------------------
def test_smoothing_by_hand_and_the_label_of_the_smoothed_probs(predictor):
    names = predictor.class_names  # angry, disgust, fear, happy, sad, surprise, neutral
    happy, sad = np.eye(len(names))[names.index("happy")], np.eye(len(names))[names.index("sad")]
    tracker = FaceTracker(alpha=0.3)
    seen = []
    for i, p in enumerate([happy, sad, sad]):
        face = {"box": [10 + 2 * i, 10, 50, 50], "score": 0.9, "label": "raw", "probs": dict(zip(names, p))}
        (out,) = tracker.track_faces([face], predictor.model)
        seen.append(out)
    assert [f["track"] for f in seen] == [1, 1, 1]
    # s0 = p0; s1 = 0.3 * sad + 0.7 * s0; s2 = 0.3 * sad + 0.7 * s1
    assert [(f["probs"]["happy"], f["probs"]["sad"]) for f in seen] == [(1.0, 0.0), (0.7, 0.3), (0.49, 0.51)]
    assert [f["label"] for f in seen] == ["happy", "happy", "sad"]  # raw labels: happy, sad, sad
    assert seen[1]["box"] == [12, 10, 50, 50] and seen[1]["score"] == 0.9

    # the bundle's rule, not a bare argmax: rejecting below 0.6, the smoothed 0.7 is kept, 0.51 is not
    rejecting = BundleModel(SHIPPED_BUNDLE, reject_unknown=True, unknown_threshold=0.6)
    tracker = FaceTracker(alpha=0.3)
    faces = [[{"box": [10, 10, 50, 50], "score": 0.9, "probs": dict(zip(names, p))}] for p in (happy, sad, sad)]
    labels = [tracker.track_faces(frame, rejecting)[0]["label"] for frame in faces]
    assert labels == ["happy", "happy", "unknown"]


def test_alpha_one_is_no_smoothing():
    tracker = FaceTracker(alpha=1.0)
    for p in ([0.9, 0.1], [0.2, 0.8]):
        (track,) = tracker.update([[0, 0, 10, 10]], np.array([p]))
    np.testing.assert_allclose(track.probs, [0.2, 0.8])


def test_greedy_iou_matching_and_expiry():
    tracker = FaceTracker(iou_threshold=0.3, expire_after=3, alpha=1.0)
    p2 = np.full((2, 2), 0.5)
    a, b = tracker.update([[0, 0, 10, 10], [100, 0, 10, 10]], p2)
    assert (a.id, b.id) == (1, 2)
    # order of the boxes swapped, both moved a little: ids follow the boxes
    b2, a2 = tracker.update([[102, 1, 10, 10], [1, 0, 10, 10]], p2)
    assert (a2.id, b2.id) == (1, 2)
    # a box overlapping two tracks goes to the one it overlaps most; the other track is then unmatched
    (best,) = tracker.update([[5, 0, 10, 10]], np.full((1, 2), 0.5))  # IoU 0.43 with track 1 at x=1, 0 with track 2
    assert best.id == 1
    # IoU below the threshold (x shifted by 8 of 10: 0.11) -> a new track
    (far,) = tracker.update([[13, 0, 10, 10]], np.full((1, 2), 0.5))
    assert far.id == 3
    # track 2 has now missed 2 frames: one more frame unmatched (3 in a row) ends it
    assert sorted(t.id for t in tracker.tracks) == [1, 2, 3]
    tracker.update([[13, 0, 10, 10]], np.full((1, 2), 0.5))
    assert sorted(t.id for t in tracker.tracks) == [1, 3]  # 1 has missed 2, 2 has missed 3
    (back,) = tracker.update([[102, 1, 10, 10]], np.full((1, 2), 0.5))
    assert back.id == 4  # where track 2 was, after it expired


def test_matching_is_best_iou_first():
    tracker = FaceTracker(iou_threshold=0.3, alpha=1.0)
    tracker.update([[0, 0, 10, 10], [6, 0, 10, 10]], np.full((2, 2), 0.5))  # tracks 1 and 2, overlapping
    # IoU 0.33 with track 1 (listed first), 0.82 with track 2: the better overlap wins
    (box,) = tracker.update([[5, 0, 10, 10]], np.full((1, 2), 0.5))
    assert box.id == 2
    # two boxes, each overlapping both tracks: the best pair (second box, track 2 at x=5, IoU 1) goes first
    first, second = tracker.update([[2, 0, 10, 10], [5, 0, 10, 10]], np.full((2, 2), 0.5))
    assert (first.id, second.id) == (1, 2)


def test_bad_tracker_options_are_refused():
    with pytest.raises(ValueError, match="alpha"):
        FaceTracker(alpha=0)
    with pytest.raises(ValueError, match="expire_after"):
        FaceTracker(expire_after=0)
    with pytest.raises(ValueError, match=r"\[1, C\]"):
        FaceTracker().update([[0, 0, 1, 1]], np.zeros((2, 7)))


# -- the frame loop on a generated clip -----------------------------------------------------------
def test_one_line_a_frame_with_tracks(smoothed, predictor):
    lines, summary = smoothed
    assert [line["frame"] for line in lines] == list(range(FRAMES))
    assert [line["t"] for line in lines] == pytest.approx([i / FPS for i in range(FRAMES)], abs=1e-3)
    assert all(line["file"].endswith("clip.mp4") and (line["width"], line["height"]) == SIZE for line in lines)
    for i, line in enumerate(lines):
        expected = "" if i in BLANK else "A" if i in B_ABSENT else "AB"
        assert "".join(sorted(_side(f) for f in line["faces"])) == expected, (i, line["faces"])
    face = lines[0]["faces"][0]
    assert set(face) == {"box", "score", "label", "probs", "track"} and list(face["probs"]) == predictor.class_names
    assert all(f["label"] == max(f["probs"], key=f["probs"].get) for line in lines for f in line["faces"])

    tracks = {side: [f["track"] for line in lines for f in line["faces"] if _side(f) == side] for side in "AB"}
    assert len(set(tracks["A"])) == 1  # the moving face keeps its id, across a 3-frame gap too
    before, after = tracks["B"][: B_ABSENT.start], tracks["B"][B_ABSENT.start :]
    assert len(set(before)) == 1 and len(set(after)) == 1 and before[0] != after[0] != tracks["A"][0]
    assert (summary.frames, summary.faces) == (FRAMES, sum(len(line["faces"]) for line in lines))


def test_smoothing_reduces_frame_to_frame_change(smoothed, predictor, clip):
    raw_lines, _ = _run(predictor, clip, smooth=1.0)

    def probs_of_a(lines):
        return np.array([list(f["probs"].values()) for line in lines for f in line["faces"] if _side(f) == "A"])

    raw, smooth = probs_of_a(raw_lines), probs_of_a(smoothed[0])
    assert raw.shape == smooth.shape == (FRAMES - len(BLANK), 7)
    np.testing.assert_allclose(smooth[0], raw[0])  # a new track starts at its first probabilities
    raw_change, smooth_change = np.abs(np.diff(raw, axis=0)).sum(1).mean(), np.abs(np.diff(smooth, axis=0)).sum(1).mean()
    assert raw_change > 0  # the clip's compression makes the raw probabilities move
    assert smooth_change < 0.7 * raw_change, (smooth_change, raw_change)
    np.testing.assert_allclose(smooth[1], 0.3 * raw[1] + 0.7 * raw[0], atol=2e-4)  # (rounded to 4 places)


def test_folder_with_videos_bad_ones_reported_annotated_mp4(clip, tmp_path, capsys):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "clip.mp4").write_bytes(clip.read_bytes())
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video" * 20)
    (folder / "truncated.mov").write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    out, jsonl = tmp_path / "out", tmp_path / "pred.jsonl"
    rc = main(["predict", str(folder), "--out", str(out), "--json", str(jsonl), "--track-expire", str(EXPIRE)])
    assert rc == 1
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    errors = {Path(line["file"]).name: line["error"] for line in lines if "error" in line}
    assert sorted(errors) == ["broken.mp4", "truncated.mov"] and "cannot open as a video" in errors["broken.mp4"]
    frames = [line for line in lines if "frame" in line]
    assert len(frames) == FRAMES and all(Path(line["file"]).name == "clip.mp4" for line in frames)
    assert [Path(line["file"]).name for line in lines].index("clip.mp4") > 0  # after broken.mp4: the run went on
    err = capsys.readouterr().err
    assert "broken.mp4: cannot open as a video" in err and "truncated.mov: cannot open as a video" in err
    assert f"3 videos ({FRAMES} frames) (2 failed)" in err and "frames/s" in err

    annotated = out / "sub" / "clip.mp4"
    cap = cv2.VideoCapture(str(annotated))
    read = []
    while (frame := cap.read())[0]:
        read.append(frame[1])
    cap.release()
    assert len(read) == FRAMES and read[0].shape == (SIZE[1], SIZE[0], 3)
    x, y, _w, h = frames[0]["faces"][0]["box"]
    b, g, r = read[0][y + h // 2, x].astype(int)  # the green box edge (through the codec: roughly)
    assert g > 180 and r < 90 and b < 90, (b, g, r)
    assert annotated_path(out, Path("clip.avi")) == out / "clip.avi.mp4"


def test_max_frames_and_a_video_without_faces(predictor, tmp_path):
    blank = tmp_path / "blank.avi"
    writer = cv2.VideoWriter(str(blank), cv2.VideoWriter.fourcc(*"MJPG"), FPS, SIZE)
    for _ in range(6):
        writer.write(np.full((SIZE[1], SIZE[0], 3), 128, np.uint8))
    writer.release()
    lines, summary = _run(predictor, blank, max_frames=4)
    assert [(line["frame"], line["faces"]) for line in lines] == [(i, []) for i in range(4)]
    assert (summary.frames, summary.faces) == (4, 0)


# -- the webcam: the same frame loop ---------------------------------------------------------------
class _Camera:
    """A capture for a camera index that plays the clip, optionally Ctrl-C at frame ``interrupt_at``."""

    def __init__(self, clip: Path, opened: bool = True, interrupt_at: int | None = None):
        self._cap = REAL_CAPTURE(str(clip), cv2.CAP_FFMPEG) if opened else REAL_CAPTURE()
        self.interrupt_at, self.reads = interrupt_at, 0

    def read(self):
        if self.reads == self.interrupt_at:
            raise KeyboardInterrupt
        self.reads += 1
        return self._cap.read()

    def __getattr__(self, name):
        return getattr(self._cap, name)


def _fake_camera(monkeypatch, clip: Path, **kwargs) -> list[int]:
    opened: list[int] = []

    def capture(source, *args):
        if isinstance(source, int):
            opened.append(source)
            return _Camera(clip, **kwargs)
        return REAL_CAPTURE(source, *args)

    monkeypatch.setattr(cv2, "VideoCapture", capture)
    return opened


def test_webcam_runs_the_video_frame_loop(clip, tmp_path, monkeypatch, capsys):
    opened = _fake_camera(monkeypatch, clip)
    jsonl, out = tmp_path / "cam.jsonl", tmp_path / "out"
    assert main(["predict", "--webcam", "--max-frames", "12", "--json", str(jsonl), "--out", str(out)]) == 0
    assert opened == [0]
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [line["frame"] for line in lines] == list(range(12)) and {line["file"] for line in lines} == {"camera:0"}
    times = [line["t"] for line in lines]
    assert times[0] == 0 and times == sorted(times)  # wall-clock seconds since the first frame
    assert len({f["track"] for line in lines for f in line["faces"] if _side(f) == "A"}) == 1
    assert "1 videos (12 frames)" in capsys.readouterr().err
    assert cv2.VideoCapture(str(out / "webcam0.mp4")).get(cv2.CAP_PROP_FRAME_COUNT) == 12


def test_ctrl_c_stops_the_webcam_cleanly(clip, tmp_path, monkeypatch, capsys):
    _fake_camera(monkeypatch, clip, interrupt_at=5)
    out = tmp_path / "out"
    assert main(["predict", "--webcam", "2", "--out", str(out)]) == 0  # Ctrl-C is how a camera run ends
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 5
    assert "1 videos (5 frames)" in captured.err and "(interrupted)" in captured.err
    assert cv2.VideoCapture(str(out / "webcam2.mp4")).get(cv2.CAP_PROP_FRAME_COUNT) == 5  # finalised


def test_a_camera_that_cannot_be_opened_is_exit_2(clip, monkeypatch, capsys):
    _fake_camera(monkeypatch, clip, opened=False)
    assert main(["predict", "--webcam", "3"]) == 2
    assert "camera 3: cannot open the camera" in capsys.readouterr().err
    assert main(["predict", str(clip), "--webcam"]) == 2
    assert "not both" in capsys.readouterr().err


def test_cli_defaults_are_the_modules():
    args = build_parser().parse_args(["predict", "clip.mp4"])
    assert (args.smooth, args.track_iou, args.track_expire) == (DEFAULT_SMOOTH, DEFAULT_TRACK_IOU, DEFAULT_EXPIRE_AFTER)
    assert args.webcam is None and build_parser().parse_args(["predict", "--webcam"]).webcam == 0
    from ferops.runtime.bundle import TTA_VIEWS
    from ferops.runtime.faces import AUTO_DETECTOR, DEFAULT_DETECTOR, DETECTORS

    choices = {a.dest: a for a in next(a for a in build_parser()._actions if a.dest == "command").choices["predict"]._actions}
    assert choices["detector"].choices == [*DETECTORS, AUTO_DETECTOR] and choices["detector"].default == DEFAULT_DETECTOR
    assert choices["tta"].choices == sorted(TTA_VIEWS, key=lambda k: k != "none") and args.tta is None


def test_runtime_imports_cv2_only_when_reading_video():
    code = textwrap.dedent(
        """
        import sys
        import ferops.runtime, ferops.runtime.video
        heavy = sorted({n.split(".")[0] for n in sys.modules} & {"cv2", "torch", "tensorflow", "tf_keras", "keras", "jax"})
        assert not heavy, heavy
        print("ok")
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
