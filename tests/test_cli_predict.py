"""`ferops predict`: folders (recursive), JSON lines, annotated copies, bad inputs reported and skipped."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from ferops.cli import main

skimage_data = pytest.importorskip("skimage.data")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    from ferops.export.bundle import write_bundle
    from tflite_fixtures import CLASSES, int8_classifier

    tmp = tmp_path_factory.mktemp("cli_predict")
    int8_classifier(tmp / "m.tflite", "int8")
    return write_bundle(tmp / "bundle", tmp / "m.tflite", CLASSES, preprocessing={"input_size": 48})


@pytest.fixture
def photos(tmp_path):
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    Image.fromarray(skimage_data.astronaut()).save(root / "sub" / "astronaut.jpg", quality=92)
    Image.new("RGB", (320, 240), (128, 128, 128)).save(root / "flat.png")
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / "notes.txt").write_text("not searched: not an image suffix")
    return root


def test_folder_json_lines_annotations_and_bad_files(bundle, photos, tmp_path, capsys):
    out, jsonl = tmp_path / "out", tmp_path / "pred.jsonl"
    rc = main(["predict", str(photos), "--model", str(bundle), "--out", str(out), "--json", str(jsonl)])
    assert rc == 1  # broken.jpg failed, the others were still processed
    records = {r["file"].split("/")[-1]: r for r in map(json.loads, jsonl.read_text().splitlines())}
    assert sorted(records) == ["astronaut.jpg", "broken.jpg", "flat.png"]
    astro = records["astronaut.jpg"]
    assert (astro["width"], astro["height"]) == (512, 512)
    (face,) = astro["faces"]
    assert set(face) == {"box", "score", "label", "probs"} and len(face["box"]) == 4
    assert face["label"] in face["probs"]
    assert records["flat.png"]["faces"] == [] and records["flat.png"]["width"] == 320
    assert "error" in records["broken.jpg"] and "faces" not in records["broken.jpg"]
    err = capsys.readouterr().err
    assert "broken.jpg" in err and "truncated or corrupt" in err
    assert "3 images (1 failed), 1 faces" in err and "faces/s" in err
    assert (out / "sub" / "astronaut.jpg").is_file() and (out / "flat.png").is_file()
    assert not np.array_equal(np.asarray(Image.open(out / "sub" / "astronaut.jpg")), skimage_data.astronaut())


def test_named_files_to_stdout_and_missing_or_non_image(bundle, photos, capsys):
    rc = main(["predict", str(photos / "flat.png"), str(photos / "notes.txt"), str(photos / "nope.jpg"), "--model", str(bundle)])
    assert rc == 1
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.out.splitlines()]
    assert [line["file"].split("/")[-1] for line in lines] == ["flat.png", "notes.txt", "nope.jpg"]
    assert lines[0]["faces"] == []
    assert "notes.txt: cannot decode image file: not an image format Pillow reads" in captured.err
    assert "nope.jpg: No such file or directory" in captured.err


def test_pixel_limit_and_thresholds(bundle, photos, capsys):
    astro = str(photos / "sub" / "astronaut.jpg")
    assert main(["predict", astro, "--model", str(bundle), "--max-pixels", "1000"]) == 1
    assert "more than the limit of 1000" in capsys.readouterr().err
    assert main(["predict", astro, "--model", str(bundle), "--min-face", "300"]) == 0
    assert json.loads(capsys.readouterr().out)["faces"] == []
    assert main(["predict", astro, "--model", str(bundle), "--min-score", "0.2"]) == 0
    assert len(json.loads(capsys.readouterr().out)["faces"]) == 1


def test_bad_bundle_is_one_error(tmp_path, photos, capsys):
    assert main(["predict", str(photos), "--model", str(tmp_path / "nothing")]) == 2
    assert "missing model_metadata.json" in capsys.readouterr().err
