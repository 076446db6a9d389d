"""A local MLflow tracking server: SQLite backend store, artifacts proxied by the server.

    with tracking_server("mlruns") as uri:      # http://127.0.0.1:<free port>
        os.environ["MLFLOW_TRACKING_URI"] = uri  # training now logs over HTTP

`make mlflow-server` runs the same command in the foreground (see docs/scale-out.md). The server
binds 127.0.0.1 only; clients on other machines need the production set-up instead.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def server_command(store_dir: str | Path, host: str = "127.0.0.1", port: int = 5000, workers: int = 1) -> list[str]:
    """`mlflow server` over <store_dir>/mlflow.db, artifacts of new experiments under <store_dir>/artifacts
    (served: clients upload and download through the server, `mlflow-artifacts:/` URIs)."""
    store = Path(store_dir).resolve()
    return [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", f"sqlite:///{store / 'mlflow.db'}",
        "--artifacts-destination", str(store / "artifacts"),
        "--serve-artifacts",
        "--host", host,
        "--port", str(port),
        "--workers", str(workers),
    ]  # fmt: skip


def wait_until_up(uri: str, timeout: float = 120.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"mlflow server exited with code {proc.returncode} before answering on {uri}")
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"mlflow server not answering on {uri}/health after {timeout:.0f} s")


@contextmanager
def tracking_server(
    store_dir: str | Path, host: str = "127.0.0.1", port: int | None = None, timeout: float = 120.0, log_path: str | Path | None = None
) -> Iterator[str]:
    """Start `mlflow server` in its own process group, yield its URI, stop it (and its workers)."""
    store = Path(store_dir)
    store.mkdir(parents=True, exist_ok=True)
    port = port or free_port(host)
    uri = f"http://{host}:{port}"
    log_file = open(log_path or store / "server.log", "ab")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        server_command(store, host, port), stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True, cwd=store
    )
    try:
        wait_until_up(uri, timeout, proc)
        yield uri
    finally:
        _stop(proc)
        log_file.close()


def _stop(proc: subprocess.Popen, grace: float = 15.0) -> None:
    """SIGTERM the process group we created (the server and its workers), SIGKILL after `grace` s."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
