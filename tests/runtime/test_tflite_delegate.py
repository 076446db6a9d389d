"""The EdgeTPU delegate path of the runtime: the compiled model with the delegate when both are present,
else the CPU model with one logged notice; ``device`` says which. No libedgetpu here, so the delegate
path runs with a stand-in delegate."""

from __future__ import annotations

import logging
import shutil
from typing import ClassVar

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter as RealInterpreter

from ferops.runtime import BundleModel, TFLiteModel
from ferops.runtime import tflite as rt_tflite
from ferops.runtime.bundle import EDGETPU_MODEL_FILE, MODEL_FILE
from tflite_fixtures import int8_classifier

CLASSES = ["a", "b", "c"]
NOTICE = "EdgeTPU not used"


@pytest.fixture(scope="module")
def cpu_bundle(tmp_path_factory):
    from ferops.export.bundle import write_bundle

    tmp = tmp_path_factory.mktemp("delegate")
    int8_classifier(tmp / "m.tflite", n_classes=len(CLASSES))
    return write_bundle(tmp / "bundle", tmp / "m.tflite", CLASSES)


@pytest.fixture
def faces():
    return np.random.default_rng(3).integers(0, 256, (4, 48, 48), dtype=np.uint8)


def _with_edgetpu_file(cpu_bundle, tmp_path, content: bytes | None = None):
    bundle = tmp_path / "bundle"
    shutil.copytree(cpu_bundle, bundle)
    target = bundle / EDGETPU_MODEL_FILE
    if content is None:
        shutil.copyfile(bundle / MODEL_FILE, target)
    else:
        target.write_bytes(content)
    return bundle


def _notices(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == rt_tflite.__name__ and NOTICE in r.getMessage()]


def test_no_compiled_model_runs_on_the_cpu_without_a_notice(cpu_bundle, faces, caplog):
    caplog.set_level(logging.INFO)
    model = BundleModel(cpu_bundle)
    assert model.device == "cpu" and model.model.path.name == MODEL_FILE
    assert _notices(caplog) == []
    assert model.predict(faces)[0].shape == (4, 3)


def test_compiled_model_without_libedgetpu_falls_back_with_one_notice(cpu_bundle, tmp_path, faces, caplog):
    # not a model at all: running it on the CPU (instead of falling back) would fail to load
    bundle = _with_edgetpu_file(cpu_bundle, tmp_path, b"compiled for the EdgeTPU, no CPU kernel")
    caplog.set_level(logging.INFO)
    model = BundleModel(bundle)
    assert model.device == "cpu" and model.model.path.name == MODEL_FILE
    notices = _notices(caplog)
    assert len(notices) == 1 and rt_tflite.EDGETPU_LIBRARY in notices[0], notices
    np.testing.assert_array_equal(model.predict(faces)[0], BundleModel(cpu_bundle).predict(faces)[0])


class _RecordingInterpreter:
    """Stands in for LiteRT's Interpreter: records the delegates it is given and runs the model
    without them (no EdgeTPU here); ``fail_with_delegate`` mimics a compiled model that does not load."""

    calls: ClassVar[list[tuple[str, list]]] = []
    fail_with_delegate = False

    def __new__(cls, model_path=None, experimental_delegates=None, **kw):
        cls.calls.append((str(model_path), list(experimental_delegates or [])))
        if experimental_delegates and cls.fail_with_delegate:
            raise RuntimeError("Failed to prepare for TPU")
        return RealInterpreter(model_path=model_path, **kw)


@pytest.fixture
def fake_edgetpu(monkeypatch):
    """libedgetpu 'present': load_delegate returns a stand-in delegate, Interpreter records it."""
    import ai_edge_litert.interpreter as litert

    delegate = object()
    loaded: list[str] = []

    def load_delegate(library, options=None):
        loaded.append(library)
        return delegate

    _RecordingInterpreter.calls = []
    _RecordingInterpreter.fail_with_delegate = False
    monkeypatch.setattr(rt_tflite, "_library_missing", lambda library: "")
    monkeypatch.setattr(litert, "load_delegate", load_delegate)
    monkeypatch.setattr(litert, "Interpreter", _RecordingInterpreter)
    return {"delegate": delegate, "loaded": loaded, "calls": _RecordingInterpreter.calls}


def test_compiled_model_runs_through_the_edgetpu_delegate(cpu_bundle, tmp_path, faces, caplog, fake_edgetpu):
    bundle = _with_edgetpu_file(cpu_bundle, tmp_path)
    caplog.set_level(logging.INFO)
    model = BundleModel(bundle)
    assert model.device == "edgetpu" and model.model.device == "edgetpu"
    assert model.model.path.name == EDGETPU_MODEL_FILE
    assert fake_edgetpu["loaded"] == [rt_tflite.EDGETPU_LIBRARY]
    path, delegates = fake_edgetpu["calls"][-1]
    assert path.endswith(EDGETPU_MODEL_FILE) and delegates == [fake_edgetpu["delegate"]]
    assert _notices(caplog) == []
    assert model.predict(faces)[0].shape == (4, 3)


def test_delegate_that_cannot_run_the_model_falls_back(cpu_bundle, tmp_path, caplog, fake_edgetpu):
    _RecordingInterpreter.fail_with_delegate = True
    caplog.set_level(logging.INFO)
    model = BundleModel(_with_edgetpu_file(cpu_bundle, tmp_path))
    assert model.device == "cpu" and model.model.path.name == MODEL_FILE
    notices = _notices(caplog)
    assert len(notices) == 1 and "Failed to prepare for TPU" in notices[0]


def test_no_device_attached_falls_back(cpu_bundle, tmp_path, caplog, monkeypatch):
    """libedgetpu installed but no Coral plugged in: load_delegate raises ValueError."""
    import ai_edge_litert.interpreter as litert

    def no_device(library, options=None):
        raise ValueError(f"Failed to load delegate from {library}")

    monkeypatch.setattr(rt_tflite, "_library_missing", lambda library: "")
    monkeypatch.setattr(litert, "load_delegate", no_device)
    caplog.set_level(logging.INFO)
    model = TFLiteModel.for_device(cpu_bundle / MODEL_FILE, _with_edgetpu_file(cpu_bundle, tmp_path) / EDGETPU_MODEL_FILE)
    assert model.device == "cpu"
    notices = _notices(caplog)
    assert len(notices) == 1 and "Failed to load delegate" in notices[0]


def test_real_library_lookup_reports_why():
    delegate, why = rt_tflite.load_edgetpu_delegate("libedgetpu-does-not-exist.so.1")
    assert delegate is None and "libedgetpu-does-not-exist.so.1" in why
