"""`mlflow models serve -m models:/<name>@champion --env-manager local` answers /invocations with the
bundle runtime's labels, for PNG images sent as base64 strings over HTTP."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from ferops.registry.promote import promote
from ferops.registry.pyfunc import LABEL_COLUMN, encode_images
from ferops.registry.register import register_model
from ferops.runtime import BundleModel

NAME = "fer-serve"
START_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 2.0) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0


def _post(url: str, payload: dict, timeout: float = 60.0) -> dict:
    req = urllib.request.Request(url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _stop(proc: subprocess.Popen, port: int, grace_s: float = 20.0) -> None:
    """SIGTERM the server's process group (mlflow -> uvicorn), wait until the process has exited
    and the port is closed, SIGKILL the group if that takes longer than `grace_s`."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and (proc.poll() is None or _port_open(port)):
        time.sleep(0.2)
    if proc.poll() is None or _port_open(port):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def test_serve_champion_over_http(store, tmp_path, bundle_dir, face_images, make_run, export_metrics):
    version = register_model(make_run(), bundle_dir, NAME, metrics=export_metrics(0.5))
    assert promote(NAME).new_champion == version

    port = free_port()
    mlflow_bin = Path(sys.executable).with_name("mlflow")
    log_path = tmp_path / "serve.log"
    env = {**os.environ, "MLFLOW_TRACKING_URI": store, "PATH": f"{mlflow_bin.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    cmd = [str(mlflow_bin), "models", "serve", "-m", f"models:/{NAME}@champion", "--env-manager", "local",
           "-h", "127.0.0.1", "-p", str(port), "-w", "1"]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path, start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while _get(f"http://127.0.0.1:{port}/ping") != 200:
            assert proc.poll() is None, f"server exited:\n{log_path.read_text()[-4000:]}"
            assert time.monotonic() < deadline, f"server not up in {START_TIMEOUT_S}s:\n{log_path.read_text()[-4000:]}"
            time.sleep(0.5)

        _, ref_labels = BundleModel(bundle_dir).predict(face_images)
        frame = encode_images(face_images, as_base64=True)
        split = {"dataframe_split": {"columns": ["image"], "data": [[s] for s in frame["image"]]}}
        preds = _post(f"http://127.0.0.1:{port}/invocations", split)["predictions"]
        assert [p[LABEL_COLUMN] for p in preds] == ref_labels
        probs = np.array([[v for k, v in p.items() if k.startswith("prob_")] for p in preds])
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=0.05)

        records = {"dataframe_records": [{"image": s} for s in frame["image"][:3]]}
        assert [p[LABEL_COLUMN] for p in _post(f"http://127.0.0.1:{port}/invocations", records)["predictions"]] == ref_labels[:3]

        bad = {"dataframe_split": {"columns": ["image"], "data": [["bm90IGFuIGltYWdl"]]}}  # base64 of "not an image"
        try:
            _post(f"http://127.0.0.1:{port}/invocations", bad)
            raise AssertionError("an undecodable image must be an HTTP error")
        except urllib.error.HTTPError as err:
            assert 400 <= err.code < 600
    finally:
        _stop(proc, port)
    assert proc.poll() is not None and not _port_open(port)
