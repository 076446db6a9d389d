"""`mlflow models serve -m models:/<name>@champion --env-manager local` answers /invocations with the
bundle runtime's labels, for PNG images sent as base64 strings over HTTP, and with one row a face
for a real JPEG photo sent as CSV (curl --data-binary) or JSON; bad input (a decompression
bomb, a truncated JPEG, a non-image, too many rows) gets a 400 naming the row and the reason, and the
server answers the next good request."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import struct
import sys
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from ferops.registry.promote import promote
from ferops.registry.pyfunc import BOX_COLUMNS, LABEL_COLUMN, MAX_ROWS, encode_images
from ferops.registry.register import register_model
from ferops.runtime import BundleModel, FacePredictor
from ferops.tracking import server

NAME = "fer-serve"
START_TIMEOUT_S = 120


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


def _astronaut_jpeg() -> bytes:
    from skimage.data import astronaut  # a public-domain portrait inside the scikit-image wheel

    buf = io.BytesIO()
    Image.fromarray(astronaut()).save(buf, format="JPEG", quality=92)
    return buf.getvalue()


def _post_error(url: str, payload: dict) -> tuple[int, str]:
    try:
        _post(url, payload)
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read()).get("message", "")
    raise AssertionError("expected an HTTP error")


def test_serve_champion_over_http(store, tmp_path, bundle_dir, face_images, make_run, export_metrics):
    version = register_model(make_run(), bundle_dir, NAME, metrics=export_metrics(0.5))
    assert promote(NAME).new_champion == version

    port = server.free_port()
    mlflow_bin = Path(sys.executable).with_name("mlflow")
    log_path = tmp_path / "serve.log"
    env = {**os.environ, "MLFLOW_TRACKING_URI": store, "PATH": f"{mlflow_bin.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    cmd = [
        str(mlflow_bin),
        "models",
        "serve",
        "-m",
        f"models:/{NAME}@champion",
        "--env-manager",
        "local",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-w",
        "1",
    ]
    proc = server.start(cmd, f"http://127.0.0.1:{port}/ping", log_path, START_TIMEOUT_S, env=env, cwd=tmp_path)
    try:
        _, ref_labels = BundleModel(bundle_dir).predict(face_images)
        frame = encode_images(face_images, as_base64=True)
        split = {"dataframe_split": {"columns": ["image"], "data": [[s] for s in frame["image"]]}}
        url = f"http://127.0.0.1:{port}/invocations"
        b64 = lambda data: base64.b64encode(data).decode("ascii")
        preds = _post(url, split)["predictions"]
        assert [p[LABEL_COLUMN] for p in preds] == ref_labels
        probs = np.array([[v for k, v in p.items() if k.startswith("prob_")] for p in preds])
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=0.05)

        records = {"dataframe_records": [{"image": s} for s in frame["image"][:3]]}
        assert [p[LABEL_COLUMN] for p in _post(f"http://127.0.0.1:{port}/invocations", records)["predictions"]] == ref_labels[:3]

        # A whole photo (a real JPEG): CSV with one base64 line, as `curl --data-binary @-` sends it
        # (README), and JSON with the detect param; the faces FacePredictor finds come back.
        photo = _astronaut_jpeg()
        faces = FacePredictor(bundle_dir).predict(photo)
        csv_body = b"image\n" + base64.b64encode(photo) + b"\n"
        req = urllib.request.Request(url, data=csv_body, headers={"Content-Type": "text/csv"})
        with urllib.request.urlopen(req, timeout=60) as r:
            answer = json.loads(r.read())["predictions"]
        assert [[p[c] for c in BOX_COLUMNS] for p in answer] == [f["box"] for f in faces] and len(faces) == 1
        assert [p[LABEL_COLUMN] for p in answer] == [f["label"] for f in faces]
        as_json = {"dataframe_split": {"columns": ["image"], "data": [[b64(photo)]]}, "params": {"detect": True}}
        assert _post(url, as_json)["predictions"] == answer

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
        server.stop(proc, port)
    assert proc.poll() is not None and not server.port_open(port)
