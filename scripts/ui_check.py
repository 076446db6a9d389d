#!/usr/bin/env python
"""Look at the MLflow UI the way a person would: headless Chromium, screenshots, expected content.

Starts `mlflow server` on 127.0.0.1 (a free port) on the project store (or --tracking-uri), opens
  1. the experiment's runs page  -> must show the pipeline run's name,
  2. that run's page             -> its name and test/macro_f1 (when the run has it),
  3. the registered model's page -> the alias (default `champion`) and the version it points to,
  4. that version's page         -> the version, the alias, its int8.macro_f1 tag (when it has one),
saves outputs/ui/{runs,run,model,version}.png (+ the visible text as .txt), stops the server, and
exits 1 when something expected is missing (2 when the check itself could not run).

    python scripts/ui_check.py                      # run from outputs/run_id.txt, model from outputs/register/registered.json
    python scripts/ui_check.py --tracking-uri sqlite:///tmp/x/mlflow.db --run-id ID --model-name NAME

Needs Debian `chromium` + `chromium-driver` and the `selenium` package (`make ui-check` installs them).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUN_METRICS = ("test/macro_f1", "val/macro_f1")  # the run page must show the first one the run has
VERSION_TAGS = ("int8.macro_f1",)  # the version page must show the first one the version has


def _import_src() -> None:
    """The script runs from a checkout; ferops may not be installed in the interpreter."""
    if str(ROOT / "src") not in sys.path:
        sys.path.insert(0, str(ROOT / "src"))


def server_command(uri: str, port: int) -> list[str]:
    """`mlflow server` on an existing store: the UI only reads it, so no artifact settings."""
    mlflow_bin = Path(sys.executable).with_name("mlflow")
    return [
        str(mlflow_bin if mlflow_bin.exists() else "mlflow"),
        "server",
        "--backend-store-uri",
        uri,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]


def make_driver(width: int = 1920, height: int = 1080):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={width},{height}",
        "--disable-extensions",
        "--no-first-run",
    ):
        opts.add_argument(arg)
    binary = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if binary:
        opts.binary_location = binary
    driver_path = shutil.which("chromedriver")
    service = Service(executable_path=driver_path) if driver_path else Service()
    return webdriver.Chrome(service=service, options=opts)


def tidy_ui(driver, url: str) -> None:
    """Best effort, cosmetic: the "Model training" sidebar instead of "GenAI", assistant panel closed.
    MLflow keeps both choices in the browser, so later pages show them too."""
    from selenium.webdriver.common.by import By

    driver.get(url)
    time.sleep(3)
    try:
        for el in driver.find_elements(By.XPATH, "//*[normalize-space(text())='Model training']")[:1]:
            el.click()
        time.sleep(1)
        for el in driver.find_elements(By.CSS_SELECTOR, "button[data-component-id='mlflow.assistant.chat_panel.close']"):
            el.click()
    except Exception as err:  # a UI that looks different still gets checked
        print(f"(could not tidy the UI: {type(err).__name__})")


def visit(driver, url: str, expected: list[str], shot: Path, timeout_s: float) -> list[str]:
    """Open `url`, wait (bounded) until the page text holds every expected string, settle, screenshot.
    Returns the expected strings that never appeared."""
    from selenium.webdriver.common.by import By

    driver.get(url)
    deadline = time.monotonic() + timeout_s
    text = ""
    while time.monotonic() < deadline:
        try:
            text = driver.find_element(By.TAG_NAME, "body").text
        except Exception:  # the React app replaces the DOM while it loads
            text = ""
        if text and all(e in text for e in expected):
            break
        time.sleep(0.5)
    time.sleep(1.5)  # let charts, fonts and lazy tables settle before the picture
    text = driver.find_element(By.TAG_NAME, "body").text
    driver.save_screenshot(str(shot))
    shot.with_suffix(".txt").write_text(text)
    return [e for e in expected if e not in text]


def resolve_targets(args) -> dict:
    """What the pages must show: experiment id, run id/name (+ a metric), model name, alias version (+ a tag)."""
    _import_src()
    from mlflow.exceptions import MlflowException

    from ferops import tracking

    uri = args.tracking_uri or tracking.tracking_uri()
    client = tracking.client(uri)
    run = client.get_run(args.run_id or tracking.read_run_id(args.run_id_file))
    name = args.model_name
    registered = Path(args.registered_json)
    if name is None and registered.is_file():
        name = json.loads(registered.read_text())["name"]
    if name is None:
        from ferops.registry.config import load_registry_config

        name = load_registry_config().name
    version, version_tags = None, {}
    try:
        mv = client.get_model_version_by_alias(name, args.alias)
        version, version_tags = str(mv.version), dict(mv.tags)
    except MlflowException:
        pass
    return {
        "uri": uri,
        "experiment_id": run.info.experiment_id,
        "run_id": run.info.run_id,
        "run_name": run.info.run_name or run.info.run_id,
        "run_metric": next((m for m in RUN_METRICS if m in run.data.metrics), None),
        "model": name,
        "version": version,
        "version_tag": next((t for t in VERSION_TAGS if t in version_tags), None),
    }


def main(argv: list[str] | None = None) -> int:
    """0: every page showed what was expected; 1: something was missing; 2: the check itself broke."""
    try:
        return check(argv)
    except Exception as err:  # server or browser trouble is not a UI verdict
        import traceback

        traceback.print_exc()
        print(f"UI check could not run: {type(err).__name__}: {err}", file=sys.stderr)
        return 2


def check(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tracking-uri", help="default: $MLFLOW_TRACKING_URI, else the project's sqlite:///mlruns/mlflow.db")
    p.add_argument("--run-id", help="run whose name must show (default: outputs/run_id.txt)")
    p.add_argument("--run-id-file", default="outputs/run_id.txt")
    p.add_argument("--model-name", help="default: outputs/register/registered.json, else registry.name")
    p.add_argument("--registered-json", default="outputs/register/registered.json")
    p.add_argument("--alias", default="champion")
    p.add_argument("--out", default="outputs/ui")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for each page's content")
    p.add_argument("--server-timeout", type=float, default=120.0, help="seconds to wait for the server to start")
    args = p.parse_args(argv)

    t = resolve_targets(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    if t["version"] is None:
        problems.append(f"registered model {t['model']!r} has no alias {args.alias!r}")

    alias = f"@ {args.alias}"  # how the UI renders an alias (a tag like promotion.previous_champion is not one)
    exp = f"#/experiments/{t['experiment_id']}"
    pages = [
        ("runs", f"{exp}/runs", [t["run_name"]]),
        ("run", f"{exp}/runs/{t['run_id']}", [t["run_name"], *filter(None, [t["run_metric"]])]),
        ("model", f"#/models/{t['model']}", [t["model"], alias, f"Version {t['version']}"] if t["version"] else [t["model"]]),
    ]
    if t["version"]:
        pages.append(
            (
                "version",
                f"#/models/{t['model']}/versions/{t['version']}",
                [f"Version {t['version']}", alias, *filter(None, [t["version_tag"]])],
            )
        )

    from ferops.tracking import server

    port = server.free_port()
    log_path = out / "mlflow-server.log"
    log_path.unlink(missing_ok=True)  # this run's log only
    proc = server.start(server_command(t["uri"], port), f"http://127.0.0.1:{port}/health", log_path, args.server_timeout)
    driver = None
    try:
        driver = make_driver()
        root = f"http://127.0.0.1:{port}/"
        tidy_ui(driver, root + pages[0][1])
        for page, path, expected in pages:
            missing = visit(driver, root + path, expected, out / f"{page}.png", args.timeout)
            status = "ok" if not missing else f"MISSING {missing}"
            print(f"{page:8s} {root + path}\n         expected {expected}: {status} -> {out / f'{page}.png'}")
            problems += [f"{page} page lacks {m!r}" for m in missing]
    finally:
        if driver is not None:
            driver.quit()
        server.stop(proc, port)
    if problems:
        print("UI check FAILED:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    print("UI check passed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
