"""dvc.yaml sees every change: each stage depends on every module it executes, every param it
reads and the raw file it reads.

The smoke pipeline runs (`dvc repro`, tiny settings) in a temporary copy of the repository with a
`sitecustomize` hook on PYTHONPATH: when a stage process exits it writes the `ferops` modules in
`sys.modules` and the params.yaml keys it read. The tests compare that record, plus the modules
named by `_target_` in the params the stage reads, with dvc.yaml. Nothing is hard-coded: a module
someone adds tomorrow is checked as soon as a stage imports it.

Cost: the default suite runs prepare, train and evaluate once (`dvc repro evaluate`, shared by
the tests here) and checks export and register statically (every `ferops` import their entry
modules can reach, function-level ones included). The recorded run of export and register
(TensorFlow conversion) is marked slow: `make test-slow`.
"""

from __future__ import annotations

import ast
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from repo_copy import copy_repo, run

from fixtures_data import write_fer2013_csv

ROOT = Path(__file__).resolve().parents[2]
RECORD_ENV = "FEROPS_RECORD_IMPORTS"
# Check another dvc.yaml against the code (e.g. the previous one: `git show HEAD~:dvc.yaml > /tmp/old.yaml`).
DVC_YAML = Path(os.environ.get("FEROPS_TEST_DVC_YAML") or ROOT / "dvc.yaml")

# Runs at the start of every Python process of the pipeline (site imports `sitecustomize` from
# PYTHONPATH). Only active with FEROPS_RECORD_IMPORTS set; records `ferops*` modules and the keys
# read from any config loaded from a file named params.yaml.
HOOK = r"""
import atexit, json, os, sys, time

_t0 = time.time()
_out = os.environ.get("FEROPS_RECORD_IMPORTS")
if _out:
    _keys = set()
    _roots = []
    try:
        from omegaconf import DictConfig, OmegaConf

        _load, _get_impl = OmegaConf.load, DictConfig._get_impl

        def _recording_load(file_, *a, **k):
            cfg = _load(file_, *a, **k)
            if os.path.basename(str(file_)) == "params.yaml":
                _roots.append(cfg)
            return cfg

        def _recording_get_impl(self, key, *a, **k):
            try:
                root = self._get_root()
                if any(root is r for r in _roots):
                    _keys.add(self._get_full_key(key))
            except Exception:
                pass
            return _get_impl(self, key, *a, **k)

        OmegaConf.load = staticmethod(_recording_load)
        DictConfig._get_impl = _recording_get_impl
    except ImportError:
        pass

    def _dump():
        main = sys.modules.get("__main__")
        spec = getattr(main, "__spec__", None)
        mods = {n: getattr(m, "__file__", None) for n, m in list(sys.modules.items()) if n == "ferops" or n.startswith("ferops.")}
        mods[spec.name if spec else "__main__"] = getattr(main, "__file__", None)
        rec = {"main": spec.name if spec else None, "argv": sys.argv, "modules": mods, "params": sorted(_keys), "seconds": round(time.time() - _t0, 1)}
        with open(os.path.join(_out, f"{os.getpid()}.json"), "w") as f:
            json.dump(rec, f)

    atexit.register(_dump)
"""


def compose(repo_dir: Path, *overrides: str) -> None:
    """params.yaml from the copy's conf/, as `python -m ferops.stages.params` writes it (in-process: cheaper)."""
    from omegaconf import OmegaConf

    from ferops.stages.params import compose_params

    (repo_dir / "params.yaml").write_text(OmegaConf.to_yaml(compose_params(list(overrides), conf_dir=repo_dir / "conf")))


def stage_modules(dvc_yaml: dict) -> dict[str, str]:
    """stage -> the module its cmd runs (`python -m ferops.stages.x`)."""
    out = {}
    for name, stage in dvc_yaml["stages"].items():
        words = str(stage["cmd"]).split()
        out[name] = words[words.index("-m") + 1]
    return out


def dep_paths(stage: dict) -> list[str]:
    """Plain (non-templated) deps, normalised without a trailing slash."""
    return [str(d).rstrip("/") for d in stage.get("deps", []) if "${" not in str(d)]


def param_keys(stage: dict) -> list[str]:
    keys: list[str] = []
    for p in stage.get("params", []):
        if isinstance(p, dict):  # {file: [keys]}
            for file_keys in p.values():
                keys.extend(file_keys or [])
        else:
            keys.append(str(p))
    return keys


def covered(path: str, deps: list[str]) -> bool:
    return any(path == d or path.startswith(d + "/") for d in deps)


def module_file(dotted: str, src: Path) -> str | None:
    """The source file of the longest importable prefix of `dotted` (a `_target_`), without importing it."""
    parts = dotted.split(".")
    while parts:
        base = src.joinpath(*parts)
        for cand in (base.with_suffix(".py"), base / "__init__.py"):
            if cand.is_file():
                return str(cand.relative_to(src.parent))
        parts.pop()
    return None


def targets(node, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(params key, value) of every `_target_` under `node`."""
    if isinstance(node, dict):
        for k, v in node.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            if k == "_target_":
                yield prefix, str(v)
            else:
                yield from targets(v, key)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from targets(v, f"{prefix}.{i}")


SMOKE = (
    "experiment=smoke",
    "data.source.n_per_class=40",
    "trainer.max_epochs=1",
    "export.n_latency_runs=2",
    "export.n_latency_warmup=1",
    "export.n_calibration=20",
    "export.max_eval_images=32",
    "export.edgetpu_compiler=off",
    # a near-chance 1-epoch model: the gates are tested in tests/export, not here
    "export.gates.max_accuracy_drop=100",
    "export.gates.min_int8_agreement=0",
)
# A tiny FER2013 CSV outside the repository: data.path may point anywhere (README: -S data.path=/path/...)
TINY_CSV = [
    (label, usage, 100 * i + 10 * label + k)
    for i, usage in enumerate(["Training", "PublicTest", "PrivateTest"])
    for label in range(7)
    for k in range(6 if i == 0 else 3)
]


def record_pipeline(tmp: Path, overrides: tuple[str, ...], *stages: str):
    """`dvc repro [stages]` in a copy, every stage's imports and params reads recorded."""
    repo_dir, env = copy_repo(tmp, DVC_YAML)
    hook, records = tmp / "hook", tmp / "records"
    hook.mkdir()
    records.mkdir()
    (hook / "sitecustomize.py").write_text(HOOK)
    compose(repo_dir, *overrides)
    env = {**env, "PYTHONPATH": f"{hook}{os.pathsep}{env['PYTHONPATH']}", RECORD_ENV: str(records)}
    run(["dvc", "repro", *stages], repo_dir, env)
    dvc_yaml = yaml.safe_load((repo_dir / "dvc.yaml").read_text())
    by_module: dict[str, list[dict]] = {}
    for f in records.glob("*.json"):
        rec = json.loads(f.read_text())
        by_module.setdefault(rec["main"], []).append(rec)
    return repo_dir, env, dvc_yaml, by_module


@pytest.fixture(scope="module")
def raw_csv(tmp_path_factory) -> Path:
    return write_fer2013_csv(tmp_path_factory.mktemp("elsewhere") / "fer2013.csv", TINY_CSV)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory, raw_csv):
    """prepare, train and evaluate (the cheap stages) on the tiny CSV, recorded; the default suite.
    (The synthetic default, data.path=data/raw, runs in recorded_all and in test_pipeline.py.)"""
    overrides = (
        "data=fer2013",
        f"data.path={raw_csv}",
        "data.batch_size=16",
        "trainer.max_epochs=1",
        "tracking.experiment=ferops-smoke",
    )
    return record_pipeline(tmp_path_factory.mktemp("dvc_graph"), overrides, "evaluate")


@pytest.fixture(scope="module")
def recorded_all(tmp_path_factory):
    """The whole smoke pipeline, export and register included (slow: TensorFlow conversion)."""
    return record_pipeline(tmp_path_factory.mktemp("dvc_graph_all"), SMOKE)


def stage_records(recorded, stage: str) -> list[dict]:
    _, _, dvc_yaml, by_module = recorded
    recs = by_module.get(stage_modules(dvc_yaml)[stage], [])
    assert recs, f"no record of stage {stage!r}: did it run, and did the hook load?"
    return recs


def target_files(params: dict, sections: set[str], src: Path) -> dict[str, str]:
    """Source files of the `ferops` modules named by `_target_` in these params sections."""
    files = {}
    for section in sections:
        for key, target in targets(params.get(section), section):
            if target.startswith("ferops."):
                path = module_file(target, src)
                assert path, f"{key}._target_={target}: no such module under src/"
                files[path] = f"{target} (params {key}._target_)"
    return files


def missing_deps(files: dict[str, str], stage: str, dvc_yaml: dict) -> str:
    deps = dep_paths(dvc_yaml["stages"][stage])
    missing = sorted(f"{path}  ({name})" for path, name in files.items() if not covered(path, deps))
    return f"dvc.yaml stage {stage!r} runs these but does not depend on them:\n" + "\n".join(missing) if missing else ""


FAST = ("prepare", "train", "evaluate")
SLOW = ("export", "register")
STAGES = FAST + SLOW
BY_RUN = [pytest.param(s, marks=pytest.mark.slow) if s in SLOW else s for s in STAGES]


def _recording(request, stage):
    return request.getfixturevalue("recorded_all" if stage in SLOW else "recorded")


@pytest.mark.parametrize("stage", BY_RUN)
def test_stage_depends_on_every_module_it_executes(request, stage):
    recorded = _recording(request, stage)
    repo_dir, _, dvc_yaml, _ = recorded
    src = repo_dir / "src"
    params = yaml.safe_load((repo_dir / "params.yaml").read_text())
    files: dict[str, str] = {}
    for rec in stage_records(recorded, stage):
        for name, path in rec["modules"].items():
            if path and Path(path).resolve().is_relative_to(src.resolve()):
                files[str(Path(path).resolve().relative_to(repo_dir.resolve()))] = name
        # modules named as `_target_` (instantiated by Hydra) in the params it reads, used or not this run
        sections = {k.split(".")[0] for k in rec["params"]} | {k.split(".")[0] for k in param_keys(dvc_yaml["stages"][stage])}
        files.update({k: v for k, v in target_files(params, sections, src).items() if k not in files})
    assert files
    assert not (msg := missing_deps(files, stage, dvc_yaml)), msg


def static_imports(modules: list[str], src: Path) -> dict[str, str]:
    """file -> module for `modules` and every `ferops` module they can import, transitively, at module
    level or inside functions (a superset of one run's imports: every code path, e.g. the EdgeTPU
    compiler's, which the smoke run skips)."""
    seen: dict[str, str] = {}
    todo = list(modules)
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__ first
            dotted = ".".join(parts[:i])
            path = _exact(dotted, src)
            if path is None or path in seen:
                continue
            seen[path] = dotted
            tree = ast.parse((src.parent / path).read_text())
            package = dotted if path.endswith("__init__.py") else dotted.rpartition(".")[0]
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    todo.extend(a.name for a in node.names if a.name.split(".")[0] == "ferops")
                elif isinstance(node, ast.ImportFrom):
                    base = node.module or ""
                    if node.level:
                        up = package.split(".")[: len(package.split(".")) - node.level + 1]
                        base = ".".join(up + ([base] if base else []))
                    if base.split(".")[0] == "ferops":
                        todo.append(base)
                        todo.extend(f"{base}.{a.name}" for a in node.names if _exact(f"{base}.{a.name}", src))
    return seen


def _exact(dotted: str, src: Path) -> str | None:
    """The file of exactly this module (not of a prefix), or None."""
    base = src.joinpath(*dotted.split("."))
    for cand in (base.with_suffix(".py"), base / "__init__.py"):
        if cand.is_file():
            return str(cand.relative_to(src.parent))
    return None


@pytest.mark.parametrize("stage", list(yaml.safe_load(DVC_YAML.read_text())["stages"]))
def test_stage_depends_on_every_module_it_can_import(stage):
    # Static and instant, so export and register are checked in the default suite too.
    dvc_yaml = yaml.safe_load(DVC_YAML.read_text())
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    src = ROOT / "src"
    # the entry module and the `_target_` modules of its params (Hydra imports them), and all they import
    named = target_files(params, {k.split(".")[0] for k in param_keys(dvc_yaml["stages"][stage])}, src)
    modules = [stage_modules(dvc_yaml)[stage], *(v.split()[0].rpartition(".")[0] for v in named.values())]
    files = static_imports(modules, src)
    files.update({k: v for k, v in named.items() if k not in files})
    assert not (msg := missing_deps(files, stage, dvc_yaml)), msg


def _declared(key: str, declared: list[str]) -> bool:
    # the key itself or a section above it is declared, or it is a section read on the way to a declared key
    return any(key == p or key.startswith(p + ".") or p.startswith(key + ".") for p in declared)


@pytest.mark.parametrize("stage", BY_RUN)
def test_stage_declares_every_param_it_reads(request, stage):
    recorded = _recording(request, stage)
    _, _, dvc_yaml, _ = recorded
    declared = param_keys(dvc_yaml["stages"][stage])
    read = sorted({k for rec in stage_records(recorded, stage) for k in rec["params"]})
    missing = [k for k in read if not _declared(k, declared)]
    assert not missing, f"dvc.yaml stage {stage!r} reads these params but does not declare them: {missing}"


def test_editing_the_augmentation_marks_train_changed(recorded):
    repo_dir, env, _, _ = recorded
    assert "up to date" in run(["dvc", "status", "train"], repo_dir, env).stdout
    augment = repo_dir / "src/ferops/data/augment.py"
    original = augment.read_text()
    try:
        augment.write_text(original + "\n# an edit\n")
        out = run(["dvc", "status", "--json", "train"], repo_dir, env).stdout
        status = json.loads(out)
        assert "train" in status, status
        changed = json.dumps(status["train"])
        assert "src/ferops/data" in changed, status["train"]
    finally:
        augment.write_text(original)


def test_a_raw_file_outside_data_raw_is_a_dependency_of_prepare(recorded, raw_csv):
    repo_dir, env, _, _ = recorded
    assert "up to date" in run(["dvc", "status", "prepare"], repo_dir, env).stdout
    original = raw_csv.read_bytes()
    try:
        write_fer2013_csv(raw_csv, [(label, usage, seed + 1) for label, usage, seed in TINY_CSV])  # same shape, new pixels
        status = json.loads(run(["dvc", "status", "--json", "prepare"], repo_dir, env).stdout)
        assert str(raw_csv) in json.dumps(status.get("prepare")), status
    finally:
        raw_csv.write_bytes(original)
