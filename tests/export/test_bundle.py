"""The deployment bundle written by run_export, read back by ferops.runtime.BundleModel."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from ferops.export.bundle import write_bundle
from ferops.runtime import BundleError, BundleModel, prepare_faces


def test_bundle_files_and_metadata(exported):
    bundle = exported["out_dir"] / "bundle"
    assert sorted(p.name for p in bundle.iterdir()) == ["labels.txt", "model_int8.tflite", "model_metadata.json"]
    assert (bundle / "labels.txt").read_text().splitlines() == ["top", "bottom", "left"]
    assert (bundle / "model_int8.tflite").read_bytes() == (exported["out_dir"] / "exports" / "model_int8.tflite").read_bytes()
    meta = json.loads((bundle / "model_metadata.json").read_text())
    assert meta["input"]["shape"] == [1, 48, 48, 1] and meta["input"]["dtype"] == "int8"
    assert meta["input"]["quantization"] == {"scale": 1.0, "zero_point": -128}
    assert meta["output"]["dtype"] == "int8" and meta["output"]["shape"] == [1, 3]
    assert meta["output"]["quantization"]["scale"] > 0
    assert meta["softmax_in_model"] is False and meta["output"]["kind"] == "logits"
    assert meta["class_names"] == ["top", "bottom", "left"]
    pre = meta["preprocessing"]
    assert pre["resize"]["size"] == [48, 48] and "grayscale" in pre["color"]
    assert "inside the model" in pre["normalization"] and pre["in_model"]["mean"] == [0.5]
    assert meta["source"] == {"model_name": "tiny_cnn", "run_id": "test-run-123", "checkpoint": "epoch=1.ckpt"}
    assert exported["report"]["bundle_dir"] == str(bundle)


def test_bundle_runtime_matches_direct_int8_interpreter(exported):
    """BundleModel (quantise -> invoke -> dequantise -> softmax) gives the labels of a hand-written
    LiteRT loop over the same int8 file."""
    from ai_edge_litert.interpreter import Interpreter

    images = exported["data"]["eval_x"]
    model = BundleModel(exported["out_dir"] / "bundle")
    probs, labels = model.predict(images)
    assert probs.shape == (len(images), 3) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)

    it = Interpreter(model_path=str(exported["out_dir"] / "exports" / "model_int8.tflite"), num_threads=1)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    direct = []
    for img in images:
        s, z = inp["quantization"]
        it.set_tensor(inp["index"], np.clip(np.round(img / s + z), -128, 127).astype(np.int8)[None, :, :, None])
        it.invoke()
        direct.append(int(it.get_tensor(out["index"])[0].argmax()))
    assert labels == [model.class_names[i] for i in direct]
    # and the int8 labels are the PyTorch labels on this data
    torch_labels = exported["data"]["eval_y"]
    assert np.mean(np.array([model.class_names.index(lab) for lab in labels]) == torch_labels) > 0.9


def test_bundle_accepts_nhwc_and_face_crops(exported):
    model = BundleModel(exported["out_dir"] / "bundle")
    images = exported["data"]["eval_x"][:5]
    p1, l1 = model.predict(images)
    p2, l2 = model.predict(images[..., None])
    np.testing.assert_array_equal(p1, p2)
    assert l1 == l2
    big = [np.kron(img, np.ones((3, 3), np.uint8)) for img in images]  # 144x144 crops
    rgb = [np.repeat(b[..., None], 3, axis=2) for b in big]
    _, l3 = model.predict_faces(rgb)
    assert l3 == l1
    assert model.predict(prepare_faces(big))[1] == l1
    with pytest.raises(TypeError, match="uint8"):
        model.predict(images.astype(np.float32))


def test_bundle_rejects_tampered_metadata(exported, tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(exported["out_dir"] / "bundle", bundle)
    meta_path = bundle / "model_metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["input"]["quantization"]["scale"] = 0.5
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="does not match"):
        BundleModel(bundle)
    (bundle / "labels.txt").write_text("a\nb\n")
    with pytest.raises(BundleError, match="different classes"):
        BundleModel(bundle)


def test_write_bundle_refuses_float_model_and_wrong_class_count(exported, tmp_path):
    exports = exported["out_dir"] / "exports"
    with pytest.raises(ValueError, match="full-integer"):
        write_bundle(tmp_path / "b1", exports / "model_fp32.tflite", ["top", "bottom", "left"])
    with pytest.raises(ValueError, match="class names"):
        write_bundle(tmp_path / "b2", exports / "model_int8.tflite", ["a", "b"])
