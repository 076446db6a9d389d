"""`mlflow models serve -m models:/<name>@champion --env-manager local` answers /invocations with the
bundle runtime's labels, for PNG images sent as base64 strings over HTTP; bad input (a decompression
bomb, a truncated JPEG, a non-image, too many rows) gets a 400 naming the row and the reason, and the
server answers the next good request."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import struct
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import numpy as np

from ferops.registry.promote import promote
from ferops.registry.pyfunc import LABEL_COLUMN, MAX_ROWS, encode_images
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


def _bomb_png(side: int = 10_000) -> bytes:
    """A valid grayscale PNG of side x side zeros: about 100 KB for 100 MP."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(b"\x00" * (side + 1)) for _ in range(side)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _post_error(url: str, payload: dict) -> tuple[int, str]:
    try:
        _post(url, payload)
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read()).get("message", "")
    raise AssertionError("expected an HTTP error")


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
        url = f"http://127.0.0.1:{port}/invocations"
        preds = _post(url, split)["predictions"]
        assert [p[LABEL_COLUMN] for p in preds] == ref_labels
        probs = np.array([[v for k, v in p.items() if k.startswith("prob_")] for p in preds])
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=0.05)

        records = {"dataframe_records": [{"image": s} for s in frame["image"][:3]]}
        assert [p[LABEL_COLUMN] for p in _post(f"http://127.0.0.1:{port}/invocations", records)["predictions"]] == ref_labels[:3]

        from PIL import Image

        b64 = lambda data: base64.b64encode(data).decode("ascii")  # noqa: E731
        buf = io.BytesIO()
        Image.fromarray(np.repeat(np.repeat(face_images[0], 4, 0), 4, 1)).save(buf, format="JPEG", quality=95)
        good = frame["image"][0]
        bad_inputs = {
            "decompression bomb": ([good, b64(_bomb_png())], r"row 1: image is 10000x10000 = 100000000 pixels"),
            "truncated JPEG": ([b64(buf.getvalue()[:2000])], r"row 0: cannot decode image bytes \(truncated or corrupt"),
            "non-image": ([good, good, "bm90IGFuIGltYWdl"], r"row 2: cannot decode image bytes: not a PNG or JPEG"),
            "oversized batch": ([good] * (MAX_ROWS + 1), rf"request has {MAX_ROWS + 1} rows, more than the limit of {MAX_ROWS}"),
        }
        for what, (rows, reason) in bad_inputs.items():
            code, message = _post_error(url, {"dataframe_split": {"columns": ["image"], "data": [[r] for r in rows]}})
            assert code == 400, (what, code, message[-500:])
            assert re.search(reason, message), (what, message[-500:])
            assert proc.poll() is None, f"server died on the {what}:\n{log_path.read_text()[-4000:]}"
        # ... and it answers the next good request.
        assert [p[LABEL_COLUMN] for p in _post(url, split)["predictions"]] == ref_labels
    finally:
        _stop(proc, port)
    assert proc.poll() is not None and not _port_open(port)
