"""`ferops` works from a plain (non-editable) install: the Hydra configs travel in the wheel.

src/ferops/conf links to the repository's conf/; pyproject.toml ships it as package data and
train.py's `config_path="conf"` is resolved next to the module, wherever it is installed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"


def _conf_files() -> set[str]:
    return {p.relative_to(CONF).as_posix() for p in CONF.rglob("*.yaml")}


def test_package_conf_is_the_repository_conf():
    pkg_conf = REPO / "src" / "ferops" / "conf"
    assert pkg_conf.is_dir(), "src/ferops/conf (a link to ../../conf) is missing"
    assert pkg_conf.resolve() == CONF.resolve()


def test_train_config_path_is_inside_the_package():
    source = (REPO / "src" / "ferops" / "train.py").read_text()
    (config_path,) = re.findall(r'config_path="([^"]+)"', source)
    resolved = (REPO / "src" / "ferops" / config_path).resolve()
    assert not config_path.startswith(".."), f"config_path={config_path!r} leaves the package (breaks `pip install .`)"
    assert (resolved / "config.yaml").is_file()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel `pip install .` would build, built from a copy (no build/ or egg-info in the checkout)."""
    root = tmp_path_factory.mktemp("pkg")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, root / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    shutil.copytree(REPO / "src", root / "src", symlinks=True, ignore=ignore)
    shutil.copytree(CONF, root / "conf", ignore=ignore)
    out = root / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(root), "--no-deps", "--no-build-isolation", "-q", "-w", str(out)],
        check=True,
        cwd=root,
        timeout=300,
    )
    (path,) = out.glob("ferops-*.whl")
    return path


def test_wheel_ships_every_config(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {n.removeprefix("ferops/conf/") for n in names if n.startswith("ferops/conf/")}
    assert _conf_files() <= shipped, f"configs missing from the wheel: {sorted(_conf_files() - shipped)}"
    assert "ferops/train.py" in names and "ferops/runtime/__init__.py" in names


@pytest.mark.slow
def test_installed_package_composes_from_another_cwd(wheel, tmp_path):
    """Install the wheel (no deps: they come from this venv) and compose the config from a
    directory with no conf/: what a user of `pip install .` does first."""
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)], check=True, timeout=300
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    where = subprocess.run(
        [sys.executable, "-c", "import ferops; print(ferops.__file__)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert where.stdout.strip().startswith(str(target)), where.stdout
    job = subprocess.run(
        [sys.executable, "-m", "ferops.train", "--cfg", "job", "model=resnet18"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert job.returncode == 0, job.stderr[-2000:]
    assert "_target_: ferops.data.datamodule.FERDataModule" in job.stdout
    assert "resnet18" in job.stdout
