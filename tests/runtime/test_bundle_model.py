"""BundleModel on small full-int8 models built straight with TensorFlow (independent of the export chain),
and the rule that ferops.runtime imports neither torch nor tensorflow."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from ferops.runtime import BundleModel, TFLiteModel, dequantize, softmax
from tflite_fixtures import CLASSES, int8_classifier


@pytest.fixture(scope="module", params=["int8", "uint8"])
def bundle(request, tmp_path_factory):
    from ferops.export.bundle import write_bundle

    tmp = tmp_path_factory.mktemp(f"rt_{request.param}")
    model = tmp / "m.tflite"
    int8_classifier(model, request.param)
    return write_bundle(tmp / "bundle", model, CLASSES, preprocessing={"input_size": 48}, source={"run_id": "r1"})


@pytest.fixture(scope="module")
def faces():
    """Dark to bright noisy patches, left/right gradients: different enough to get different classes."""
    rng = np.random.default_rng(5)
    level = np.linspace(10, 245, 24)[:, None, None]
    ramp = np.linspace(-60, 60, 48)[None, None, :] * rng.choice([-1, 1], 24)[:, None, None]
    return np.clip(level + ramp + rng.normal(0, 20, (24, 48, 48)), 0, 255).astype(np.uint8)


def test_predict_matches_a_direct_interpreter_loop(bundle, faces):
    from ai_edge_litert.interpreter import Interpreter

    model = BundleModel(bundle)
    probs, labels = model.predict(faces)
    assert probs.shape == (24, 4) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    assert labels == [CLASSES[i] for i in probs.argmax(1)]

    it = Interpreter(model_path=str(bundle / "model_int8.tflite"))
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    (s_in, z_in), (s_out, z_out) = inp["quantization"], out["quantization"]
    info = np.iinfo(inp["dtype"])
    expected = []
    for img in faces:
        q = np.clip(np.round(img.astype(np.float64) / s_in + z_in), info.min, info.max).astype(inp["dtype"])
        it.set_tensor(inp["index"], q[None, :, :, None])
        it.invoke()
        logits = (it.get_tensor(out["index"])[0].astype(np.float32) - z_out) * s_out
        expected.append(logits)
    expected = np.stack(expected)
    np.testing.assert_allclose(model.predict_logits(faces), expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(probs, softmax(expected), atol=1e-6)
    assert len(set(labels)) > 1  # the random net does not collapse to one class


def test_input_layouts_and_dtypes(bundle, faces):
    model = BundleModel(bundle)
    a = model.predict(faces)[0]
    np.testing.assert_array_equal(a, model.predict(faces[..., None])[0])
    np.testing.assert_array_equal(a[:1], model.predict(faces[0])[0])
    with pytest.raises(TypeError, match="uint8"):
        model.predict(faces.astype(np.float32) / 255)
    with pytest.raises(ValueError, match="48"):
        model.predict(np.zeros((2, 32, 32), np.uint8))


def test_input_quantisation_is_exact_for_pixels(bundle):
    model = TFLiteModel(bundle / "model_int8.tflite")
    meta = json.loads((bundle / "model_metadata.json").read_text())
    assert model.input.scale == 1.0 == meta["input"]["quantization"]["scale"]
    assert model.input.zero_point == meta["input"]["quantization"]["zero_point"] == (0 if model.input.dtype == np.uint8 else -128)
    pixels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    q = model.prepare(np.pad(pixels, ((0, 32), (0, 32))))
    np.testing.assert_array_equal(dequantize(q, model.input)[0, :16, :16, 0], pixels)


def test_softmax_in_model_outputs_are_returned_as_they_are(bundle, faces, tmp_path):
    import shutil

    from ferops.export.bundle import write_bundle

    b = write_bundle(tmp_path / "b", bundle / "model_int8.tflite", CLASSES, softmax_in_model=True)
    model = BundleModel(b)
    assert model.metadata["output"]["kind"] == "probabilities"
    probs, _ = model.predict(faces)
    np.testing.assert_array_equal(probs, model.predict_logits(faces))
    shutil.rmtree(b)


def test_runtime_imports_neither_torch_nor_tensorflow(bundle):
    code = textwrap.dedent(
        f"""
        import sys
        import numpy as np
        from ferops.runtime import BundleModel, prepare_faces
        m = BundleModel({str(bundle)!r})
        probs, labels = m.predict(np.zeros((2, 48, 48), np.uint8))
        m.predict_faces([np.zeros((120, 90, 3), np.uint8)])
        heavy = sorted({{n.split(".")[0] for n in sys.modules}} & {{"torch", "tensorflow", "tf_keras", "keras", "onnx", "onnxruntime", "onnx2tf", "jax"}})
        assert not heavy, heavy
        print("ok", labels)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("ok")


@pytest.mark.parametrize("model_file", ["../outside.tflite", "sub/../../outside.tflite", "{outside}", "..\\outside.tflite", 7])
def test_model_file_must_stay_inside_the_bundle(bundle, tmp_path, model_file):
    """A bundle someone hands you cannot point the runtime at a model elsewhere on the machine
    (old code loaded ../outside.tflite and the absolute path: a valid model sits there)."""
    import shutil

    from ferops.runtime import BundleError

    b = tmp_path / "bundle"
    shutil.copytree(bundle, b)
    outside = tmp_path / "outside.tflite"
    shutil.copyfile(bundle / "model_int8.tflite", outside)
    meta = json.loads((b / "model_metadata.json").read_text())
    meta["model_file"] = str(outside) if model_file == "{outside}" else model_file
    (b / "model_metadata.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="model_file"):
        BundleModel(b)
    meta["model_file"] = "./model_int8.tflite"  # relative, inside: fine
    (b / "model_metadata.json").write_text(json.dumps(meta))
    assert BundleModel(b).class_names == CLASSES
