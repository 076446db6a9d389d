"""scripts/ui_check.py against a temporary store: the MLflow UI shows the run and the champion alias
(and the check fails when the expected alias is not there). Slow: a browser and a server."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "ui_check.py"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (shutil.which("chromium") and shutil.which("chromedriver")), reason="needs chromium + chromium-driver (make ui-check)"
    ),
]


def test_ui_shows_run_and_champion(store, tmp_path, make_run):
    pytest.importorskip("selenium")
    run_id = make_run(run_name="ui-check-run")
    client = mlflow.MlflowClient()
    client.create_registered_model("fer-ui")
    v = client.create_model_version(
        "fer-ui", source=str(tmp_path / "model"), run_id=run_id, tags={"int8.macro_f1": "0.42"}
    ).version
    client.set_registered_model_alias("fer-ui", "champion", str(v))

    def check(*extra: str) -> subprocess.CompletedProcess:
        cmd = [
            sys.executable,
            str(SCRIPT),
            "--tracking-uri",
            store,
            "--run-id",
            run_id,
            "--model-name",
            "fer-ui",
            "--out",
            str(tmp_path / "ui"),
            *extra,
        ]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=400)

    ok = check()
    assert ok.returncode == 0, ok.stdout + ok.stderr
    for page in ("runs", "run", "model", "version"):
        assert (tmp_path / "ui" / f"{page}.png").stat().st_size > 10_000
    assert "ui-check-run" in (tmp_path / "ui" / "runs.txt").read_text()

    bad = check("--alias", "no-such-alias", "--timeout", "20")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "has no alias 'no-such-alias'" in bad.stderr
