"""Starting and stopping a server process (ferops.tracking.server), on a stand-in HTTP server:
the MLflow servers themselves are exercised in tests/sweeps/test_tracking_server.py and
tests/registry/test_serve.py."""

from __future__ import annotations

import sys

import pytest

from ferops.tracking import server


def test_start_waits_for_health_and_stop_frees_the_port(tmp_path):
    port = server.free_port()
    cmd = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    with server.running(cmd, f"http://127.0.0.1:{port}/", tmp_path / "http.log", timeout=60, cwd=tmp_path) as proc:
        assert proc.poll() is None and server.port_open(port)
    assert proc.poll() is not None and not server.port_open(port)


def test_a_server_that_dies_raises_with_its_log(tmp_path):
    cmd = [sys.executable, "-c", "import sys; print('bad flag'); sys.exit(3)"]
    with pytest.raises(RuntimeError, match=r"(?s)exited with code 3.*bad flag"):
        server.start(cmd, f"http://127.0.0.1:{server.free_port()}/health", tmp_path / "dead.log", timeout=60)


def test_server_command_binds_localhost(tmp_path):
    cmd = server.server_command(tmp_path, port=5123, workers=2)
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1" and cmd[cmd.index("--workers") + 1] == "2"
