"""MLflow server processes on 127.0.0.1: start one, wait until it answers, stop it and its workers.

    with tracking_server("mlruns") as uri:      # `mlflow server`, http://127.0.0.1:<free port>
        os.environ["MLFLOW_TRACKING_URI"] = uri  # training now logs over HTTP

    proc = start(cmd, f"http://127.0.0.1:{port}/ping", log_path)   # any server, e.g. `mlflow models serve`
    ...
    stop(proc, port)

`make mlflow-server` runs the tracking server in the foreground (see docs/scale-out.md). It binds
127.0.0.1 only; clients on other machines need the production set-up instead.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

LOCALHOST = "127.0.0.1"


def free_port(host: str = LOCALHOST) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = LOCALHOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def server_command(store_dir: str | Path, host: str = LOCALHOST, port: int = 5000, workers: int = 1) -> list[str]:
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


def wait_until_up(uri: str, timeout: float = 120.0, proc: subprocess.Popen | None = None, health_path: str = "/health") -> None:
    """Return once `uri + health_path` answers 200. RuntimeError when `proc` exits first,
    TimeoutError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode} before answering on {uri}")
        try:
            with urllib.request.urlopen(f"{uri}{health_path}", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"server not answering on {uri}{health_path} after {timeout:.0f} s")


def start(
    cmd: Sequence[str],
    health_url: str,
    log_path: str | Path,
    timeout: float = 120.0,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
) -> subprocess.Popen:
    """Start `cmd` in its own process group (so `stop` reaches its workers too), output appended to
    `log_path`; return once `health_url` answers 200. If it exits first or `timeout` passes, stop it
    and raise (RuntimeError / TimeoutError) with the log's tail."""
    url = urlsplit(health_url)
    uri = f"{url.scheme}://{url.netloc}"
    with open(log_path, "ab") as log:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            list(cmd), stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=dict(env) if env else None, cwd=cwd
        )
    try:
        wait_until_up(uri, timeout, proc, url.path)
    except (RuntimeError, TimeoutError) as err:
        stop(proc, url.port)
        tail = Path(log_path).read_text(errors="replace")[-4000:]
        raise type(err)(f"{err}; log {log_path}:\n{tail}") from err
    return proc


def stop(proc: subprocess.Popen, port: int | None = None, grace: float = 20.0) -> None:
    """SIGTERM the process group `start` created (the server and its workers); wait until the process
    has exited and (given `port`) nothing listens on the port; SIGKILL the group after `grace` s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and (proc.poll() is None or (port is not None and port_open(port))):
        time.sleep(0.2)
    if proc.poll() is None or (port is not None and port_open(port)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@contextmanager
def running(
    cmd: Sequence[str],
    health_url: str,
    log_path: str | Path,
    timeout: float = 120.0,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
) -> Iterator[subprocess.Popen]:
    """`start` ... `stop` around a block."""
    proc = start(cmd, health_url, log_path, timeout, env, cwd)
    try:
        yield proc
    finally:
        stop(proc, urlsplit(health_url).port)


@contextmanager
def tracking_server(
    store_dir: str | Path,
    host: str = LOCALHOST,
    port: int | None = None,
    timeout: float = 120.0,
    log_path: str | Path | None = None,
) -> Iterator[str]:
    """`mlflow server` on <store_dir> (see `server_command`): yield its URI, then stop it."""
    store = Path(store_dir)
    store.mkdir(parents=True, exist_ok=True)
    port = port or free_port(host)
    uri = f"http://{host}:{port}"
    with running(server_command(store, host, port), f"{uri}/health", log_path or store / "server.log", timeout, cwd=store):
        yield uri
