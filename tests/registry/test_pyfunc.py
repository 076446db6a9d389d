"""The pyfunc predicts what the bundle runtime predicts, from every accepted input form, and is
logged so it can be served without torch / tensorflow / an installed ferops."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml

from ferops.registry import pyfunc as P
from ferops.registry.register import CHALLENGER, register_model
from ferops.runtime import BundleModel


@pytest.fixture
def registered(store, bundle_root, bundle_dir, make_run, export_metrics):
    run_id = make_run()
    version = register_model(
        run_id,
        bundle_dir,
        "fer-pyfunc",
        metrics=export_metrics(0.61),
        extra_artifacts={"onnx": bundle_root / "model.onnx", "checkpoint": bundle_root / "best.ckpt", "missing": None},
    )
    return "fer-pyfunc", version, run_id


def test_pyfunc_matches_bundle_runtime(registered, bundle_dir, face_images):
    name, _version, _ = registered
    ref_probs, ref_labels = BundleModel(bundle_dir).predict(face_images)
    assert len(set(ref_labels)) > 1, "fixture should give varied labels"

    model = mlflow.pyfunc.load_model(f"models:/{name}@{CHALLENGER}")
    for frame in (P.encode_images(face_images), P.encode_images(face_images, as_base64=True)):
        out = model.predict(frame)
        assert list(out[P.LABEL_COLUMN]) == ref_labels
        np.testing.assert_allclose(out[P.prob_columns(P.read_class_names(bundle_dir))].to_numpy(), ref_probs, atol=1e-6)

    # Raw arrays go straight to the python model ([N,48,48] and [N,48,48,1]).
    inner = model.unwrap_python_model()
    for arr in (face_images, face_images[..., None]):
        assert list(inner.predict(None, arr)[P.LABEL_COLUMN]) == ref_labels


def test_pyfunc_other_inputs(registered, bundle_dir, face_images):
    inner = mlflow.pyfunc.load_model(f"models:/{registered[0]}/{registered[1]}").unwrap_python_model()
    _, ref_labels = BundleModel(bundle_dir).predict(face_images[:2])
    # JPEG of a larger RGB crop, read as a crop (detect: false), is decoded, grayscaled, resized; a data URI is accepted.
    import io

    from PIL import Image

    big = np.repeat(np.repeat(face_images[0], 3, axis=0), 3, axis=1)
    buf = io.BytesIO()
    Image.fromarray(np.stack([big] * 3, axis=-1)).save(buf, format="JPEG", quality=95)
    out = inner.predict(None, pd.DataFrame({"image": [buf.getvalue()]}), params={P.DETECT: False})
    assert list(out.columns) == P.output_columns(P.read_class_names(bundle_dir))
    assert out.shape == (1, 14) and out[P.LABEL_COLUMN].iloc[0] in P.read_class_names(bundle_dir)
    assert out[list(P.BOX_COLUMNS)].iloc[0].tolist() == [0, 0, 144, 144] and out[P.FACE_SCORE_COLUMN].iloc[0] is None
    uri = "data:image/png;base64," + P.encode_images(face_images[:2], as_base64=True)["image"][0]
    assert inner.predict(None, pd.DataFrame({"image": [uri]}))[P.LABEL_COLUMN].tolist() == ref_labels[:1]
    assert len(inner.predict(None, pd.DataFrame({"image": []}))) == 0
    with pytest.raises(ValueError, match="cannot decode"):
        inner.predict(None, pd.DataFrame({"image": [b"not an image"]}))
    with pytest.raises(ValueError, match="'image' column"):
        inner.predict(None, pd.DataFrame({"a": [1], "b": [2]}))


def test_logged_model_is_servable_without_torch(registered):
    name, version, run_id = registered
    client = mlflow.MlflowClient()
    mv = client.get_model_version(name, version)
    assert mv.run_id == run_id
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{name}/{version}"))
    reqs = (local / "requirements.txt").read_text().lower()
    assert "ai-edge-litert" in reqs and "pillow" in reqs
    assert "torch" not in reqs and "tensorflow" not in reqs and "onnx" not in reqs
    mlmodel = yaml.safe_load((local / "MLmodel").read_text())
    assert json.loads(mlmodel["signature"]["inputs"]) == [{"type": "binary", "name": "image", "required": True}]
    outputs = [c["name"] for c in json.loads(mlmodel["signature"]["outputs"])]
    assert outputs == P.output_columns(P.read_class_names(local / "artifacts" / "bundle"))
    params = {p["name"] for p in json.loads(mlmodel["signature"]["params"])}
    assert params == set(P.PARAMS)
    assert (local / mlmodel["saved_input_example_info"]["artifact_path"]).is_file()
    artifacts = {p.name for p in (local / "artifacts").iterdir()}
    assert {"bundle", "model.onnx", "best.ckpt", "face_detection_full_range.tflite"} <= artifacts
    assert not list((local / "code").rglob("shipped_bundle")), "the package's shipped model is not vendored"
    code = {p.relative_to(local / "code").as_posix() for p in (local / "code").rglob("*.py")}
    assert {"ferops/__init__.py", "ferops/registry/pyfunc.py", "ferops/runtime/bundle.py"} <= code
    assert not any(p.startswith(("ferops/training", "ferops/export", "ferops/tracking")) for p in code)


def test_loads_where_ferops_is_not_installed(registered, face_images, bundle_dir, tmp_path):
    """A fresh interpreter with the project's src/ removed from sys.path imports ferops from the
    model's vendored code and predicts the same labels."""
    name, version, _ = registered
    np.save(tmp_path / "x.npy", face_images)
    script = f"""
import sys
src = {str(Path(P.__file__).resolve().parents[2])!r}
sys.path = [p for p in sys.path if p.rstrip('/') != src]
import mlflow, numpy as np
model = mlflow.pyfunc.load_model("models:/{name}/{version}")
import ferops
assert src not in ferops.__file__, ferops.__file__
assert "torch" not in sys.modules and "tensorflow" not in sys.modules
from ferops.registry.pyfunc import encode_images
print("LABELS", ",".join(model.predict(encode_images(np.load({str(tmp_path / "x.npy")!r})))["label"]))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("LABELS "))
    assert line.removeprefix("LABELS ").split(",") == BundleModel(bundle_dir).predict(face_images)[1]


def test_evaluate_accepts_a_registry_uri(registered, bundle_dir, tmp_path):
    """`python -m ferops.evaluate models:/NAME@ALIAS DATA`: the registered int8 bundle, downloaded,
    scores what the bundle directory itself scores."""
    from ferops.evaluation.external import evaluate_model
    from fixtures_data import write_fer2013_csv

    name, version, _ = registered
    data = write_fer2013_csv(tmp_path / "x.csv", [(i % 7, "PrivateTest", i) for i in range(21)])
    direct = evaluate_model(bundle_dir, data, tmp_path / "direct")["metrics"]
    for uri in (f"models:/{name}@{CHALLENGER}", f"models:/{name}/{version}"):
        result = evaluate_model(uri, data, tmp_path / "uri")
        assert result["model"] == {"kind": "bundle", "location": uri, "tta": "none"}
        assert result["metrics"]["accuracy"] == direct["accuracy"] and result["metrics"]["nll"] == pytest.approx(direct["nll"])
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{name}/{version}"))
    assert evaluate_model(local, data, tmp_path / "dir")["metrics"]["accuracy"] == direct["accuracy"]
