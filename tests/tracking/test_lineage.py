"""git.dirty over the source only (DVC's own rewrites do not count) and the dvc.lock digests."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from ferops.tracking import dvc_lock_tags, git_tags

DVC_YAML = {
    "stages": {
        "prepare": {
            "cmd": "p",
            "deps": ["data/raw", "src/a.py"],
            "outs": [{"data/prepared": {"persist": True}}],
            "metrics": [{"reports/prepare/stats.json": {"cache": False}}],
        },
        "train": {
            "cmd": "t",
            "deps": ["data/prepared", "src/a.py"],
            "outs": ["outputs/train"],
            "plots": [{"reports/train/curves.png": {"cache": False}}],
        },
        "evaluate": {
            "cmd": "e",
            "deps": ["outputs/train", "data/prepared"],
            "metrics": [{"reports/evaluate/metrics.json": {"cache": False}}],
        },
    }
}


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path):
    """A committed repository with DVC-tracked reports and a lock, as a fresh clone has them."""
    for rel, text in {
        "src/a.py": "x = 1\n",
        "dvc.yaml": yaml.safe_dump(DVC_YAML),
        "dvc.lock": "schema: '2.0'\nstages: {}\n",
        "params.yaml": "seed: 1\n",
        "reports/prepare/stats.json": "{}\n",
        "reports/evaluate/metrics.json": "{}\n",
        "reports/train/curves.png": "png\n",
    }.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "init")
    return tmp_path


def test_clean_checkout_is_clean(repo):
    tags = git_tags(repo)
    assert len(tags["git.commit"]) == 40 and tags["git.dirty"] == "false" and tags["git.params_modified"] == "false"


def test_dvc_rewrites_do_not_make_it_dirty(repo):
    # what `dvc repro` does before train starts: lock entries and the tracked reports change
    (repo / "dvc.lock").write_text("schema: '2.0'\nstages:\n  prepare: {cmd: p}\n")
    (repo / "reports/prepare/stats.json").write_text('{"n": 1}\n')
    (repo / "reports/evaluate/metrics.json").write_text('{"acc": 0.5}\n')
    (repo / "reports/train/curves.png").write_text("other png\n")
    (repo / "untracked.txt").write_text("not tracked\n")
    assert git_tags(repo)["git.dirty"] == "false"


def test_dvc_exp_params_are_reported_apart(repo):
    (repo / "params.yaml").write_text("seed: 2\n")  # dvc exp run -S seed=2
    tags = git_tags(repo)
    assert tags["git.dirty"] == "false" and tags["git.params_modified"] == "true"
    assert git_tags(repo)["git.params_modified"] == "true"


def test_a_source_edit_is_dirty_and_named(repo):
    (repo / "dvc.lock").write_text("changed\n")
    (repo / "src/a.py").write_text("x = 2\n")
    tags = git_tags(repo)
    assert tags["git.dirty"] == "true" and tags["git.dirty_files"] == "src/a.py"
    git(repo, "add", "src/a.py")  # staged counts too
    assert git_tags(repo)["git.dirty"] == "true"


def test_editing_dvc_yaml_itself_is_dirty(repo):
    (repo / "dvc.yaml").write_text((repo / "dvc.yaml").read_text() + "# edit\n")
    assert git_tags(repo)["git.dirty_files"] == "dvc.yaml"


def test_from_a_subdirectory_and_outside_git(repo, tmp_path_factory):
    (repo / "reports/prepare/stats.json").write_text('{"n": 2}\n')
    assert git_tags(repo / "src")["git.dirty"] == "false"
    assert git_tags(tmp_path_factory.mktemp("nogit")) == {"git.commit": "unknown", "git.dirty": "unknown"}


def test_dvc_lock_digests_of_the_upstream_stages(repo, monkeypatch):
    lock = {
        "schema": "2.0",
        "stages": {
            "prepare": {
                "cmd": "p",
                "deps": [{"path": "data/raw", "md5": "aa.dir"}],
                "outs": [{"path": "data/prepared", "md5": "bb.dir"}],
            },
            "train": {"cmd": "t", "outs": [{"path": "outputs/train", "md5": "cc.dir"}]},
        },
    }
    (repo / "dvc.lock").write_text(yaml.safe_dump(lock))
    monkeypatch.delenv("DVC_STAGE", raising=False)
    assert dvc_lock_tags(root=repo) == {}  # not inside a DVC stage

    monkeypatch.setenv("DVC_STAGE", "train")
    monkeypatch.setenv("DVC_ROOT", str(repo))
    tags = dvc_lock_tags()
    assert tags["dvc.stage"] == "train" and set(tags) == {"dvc.stage", "dvc.lock.prepare"}
    before = tags["dvc.lock.prepare"]
    assert dvc_lock_tags("evaluate", repo).keys() == {"dvc.stage", "dvc.lock.prepare", "dvc.lock.train"}

    lock["stages"]["prepare"]["outs"][0]["md5"] = "dd.dir"  # other prepared data
    (repo / "dvc.lock").write_text(yaml.safe_dump(lock))
    assert dvc_lock_tags()["dvc.lock.prepare"] != before
