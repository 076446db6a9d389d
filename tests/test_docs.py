"""The commands in README.md, docs/*.md and data/raw/README.md are checked as written.

Every line of a ```bash block (and the imports of a ```python block) is one item:
- `python -m ferops.train OVERRIDES`: the overrides are composed with the project's conf/ (every
  value of a sweep; a sweep without -m fails as it would in Hydra);
- `ferops ...`, `python -m ferops.export|evaluate|explain ...`, `python benchmarks/*.py ...`: parsed by the
  program's own argparse parser (unknown flags or missing arguments fail), nothing runs;
- `dvc ...`: parsed by DVC's parser, and `dvc exp run -S` overrides composed; `mlflow ...`: by MLflow's click commands;
- `curl ...`: a request to the scoring server's /invocations or /ping with a content type it accepts;
- `make TARGET`: the target exists; `python -m pytest PATHS`: the paths exist;
- `python -c CODE`: run as written, in a scratch directory holding a tiny bundle at
  outputs/export/bundle, a face crop face.png and an empty MLflow store;
- shell plumbing (mkdir, cp, export, loops) is skipped; ALLOWED lists what cannot run here, with why.
Placeholders stay as written (`/path/...`, `PATH`); `...` tokens and the `<...>` / `[...]` of a
usage synopsis are dropped or unwrapped.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import runpy
import shlex
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "data" / "raw" / "README.md"]
PYTHONS = {"python", "python3", ".venv/bin/python", "$(BIN)/python"}
SHELL_PLUMBING = {"mkdir", "cp", "cd", "export", "for", "done", "do", "echo", "time", "base64"}
# Substring of a command -> why it is not run here. Each entry must still match a documented command.
ALLOWED = {
    "set_terminated('$FEROPS_PARENT_RUN_ID')": "needs the run id an earlier line of the same block exported",
}


@dataclass(frozen=True)
class Cmd:
    where: str  # "README.md:42"
    text: str  # the command as written (one of `a ; b && c`)
    argv: tuple[str, ...]


def _fenced_blocks(path: Path) -> Iterator[tuple[str, int, str]]:
    for m in re.finditer(r"^```(\w*)\n(.*?)^```", path.read_text(), re.S | re.M):
        yield m.group(1), path.read_text()[: m.start()].count("\n") + 2, m.group(2)


def _logical_lines(body: str, first: int) -> Iterator[tuple[int, str]]:
    """Lines joined over backslash continuations and open quotes."""
    buf, start = "", first
    for i, line in enumerate(body.splitlines()):
        if not buf:
            start = first + i
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        try:
            shlex.split(buf, comments=True)
        except ValueError:  # an open quote (a multi-line python -c)
            buf += "\n"
            continue
        if buf.strip():
            yield start, buf
        buf = ""


def _split_commands(line: str) -> list[list[str]]:
    lex = shlex.shlex(line, posix=True, punctuation_chars=";&|")
    lex.whitespace_split = True
    lex.commenters = "#"
    cmds, cur = [], []
    for tok in lex:
        if tok in {";", "&&", "||", "|", "&"}:
            cmds.append(cur)
            cur = []
        else:
            cur.append(tok)
    return [c for c in [*cmds, cur] if c]


def _commands() -> list[Cmd]:
    out = []
    for path in DOCS:
        rel = path.relative_to(REPO).as_posix()
        for lang, first, body in _fenced_blocks(path):
            if lang == "python":
                out.append(Cmd(f"{rel}:{first}", body, ("<python block>",)))
                continue
            if lang not in {"bash", "sh", "shell"}:
                continue
            for lineno, line in _logical_lines(body, first):
                for argv in _split_commands(line):
                    while argv and argv[0] in {"do", "then"}:
                        argv = argv[1:]
                    while argv and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", argv[0]):
                        argv = argv[1:]  # VAR=value prefix
                    if argv:
                        out.append(Cmd(f"{rel}:{lineno}", " ".join(argv), tuple(argv)))
    return out


COMMANDS = _commands()


def _unwrap(argv: tuple[str, ...]) -> list[str]:
    """Drop `...` placeholders; a synopsis's `[--flag X]` and `<NAME>` become `--flag X` and `NAME`."""
    out = []
    for tok in argv:
        if tok == "..." or tok.endswith("=..."):
            continue
        if "=[" not in tok:  # a Hydra list override (key=[a,b]) keeps its brackets
            tok = tok.lstrip("[").rstrip("]")
        out.append(re.sub(r"^<(.+)>$", r"\1", tok))
    return out


class _Parsed(Exception):
    pass


@contextmanager
def _parse_only() -> Iterator[None]:
    """argparse parses for real (SystemExit 2 on a bad command line), then stops the program."""
    original = argparse.ArgumentParser.parse_args

    def parse_args(self, args=None, namespace=None):
        raise _Parsed(original(self, args, namespace))

    with mock.patch.object(argparse.ArgumentParser, "parse_args", parse_args):
        yield


def _check_argparse(run, argv: list[str]) -> None:
    with _parse_only():
        try:
            run(argv)
        except _Parsed:
            return
        except SystemExit as e:  # --help exits 0; a bad command line exits 2
            assert e.code in (0, None), f"the program rejected its documented command line (exit {e.code})"
            return
    pytest.fail("the program did not parse its command line")


def _check_train(argv: list[str]) -> None:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from confutil import CONF_DIR

    multirun = any(a in {"-m", "--multirun"} for a in argv)
    overrides = [a for a in argv if not a.startswith("-")]
    if "--help" in argv or ("--cfg" in argv and not overrides):
        overrides = []
    multirun = multirun or any(o.startswith("hparams_search=") for o in overrides)
    parsed = OverridesParser.create().parse_overrides(overrides)
    choices = []
    for text, o in zip(overrides, parsed):
        if o.is_sweep_override():
            assert multirun, f"{text!r} sweeps: Hydra refuses it without -m"
            prefix = text.split("=", 1)[0]
            choices.append([f"{prefix}={v}" for v in o.sweep_string_iterator()])
        else:
            choices.append([text])
    for i in range(max((len(c) for c in choices), default=1)):
        chosen = [c[min(i, len(c) - 1)] for c in choices]
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            compose(config_name="config", overrides=chosen, return_hydra_config=True)
    GlobalHydra.instance().clear()


def _check_mlflow(argv: list[str]) -> None:
    import click
    from mlflow.cli import cli

    leaf_invoke = click.Command.invoke

    def invoke(self, ctx):
        if isinstance(self, click.Group):
            return leaf_invoke(self, ctx)
        raise _Parsed(ctx.params)

    with mock.patch.object(click.Command, "invoke", invoke):
        try:
            cli.main(argv, prog_name="mlflow", standalone_mode=False)
        except _Parsed:
            return
    pytest.fail("mlflow did not reach the documented command")


def _run_benchmark(script: Path):
    def run(argv: list[str]) -> None:
        with mock.patch.object(sys, "argv", [str(script), *argv]):
            runpy.run_path(str(script), run_name="__main__")

    return run


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    """A directory where the documented one-liners run: outputs/export/bundle, face.png, a store."""
    import numpy as np
    from PIL import Image

    root = tmp_path_factory.mktemp("docs")
    bundle = root / "outputs" / "export" / "bundle"
    subprocess.run([sys.executable, str(REPO / "tests" / "registry" / "make_bundle.py"), str(bundle)], check=True, timeout=300)
    face = np.load(bundle.parent / "images.npy")[0]
    Image.fromarray(face).convert("RGB").resize((96, 96)).save(root / "face.png")
    return root


def _run_python_c(code: str, scratch: Path) -> None:
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{scratch}/mlflow.db", "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", code], cwd=scratch, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"python -c failed:\n{done.stderr[-3000:]}"


def _check_python(argv: list[str], request) -> None:
    args = argv[1:]
    if args[:1] == ["-c"]:
        _run_python_c(args[1], request.getfixturevalue("scratch"))
    elif args[:2] == ["-m", "ferops.train"]:
        _check_train(args[2:])
    elif args[:2] == ["-m", "ferops.export"]:
        from ferops.export.__main__ import main

        _check_argparse(main, args[2:])
    elif args[:2] == ["-m", "ferops.evaluate"]:
        from ferops.evaluate import main

        _check_argparse(main, args[2:])
    elif args[:2] == ["-m", "ferops.explain"]:
        from ferops.explain import main

        _check_argparse(main, args[2:])
    elif args[:2] == ["-m", "pytest"]:
        paths = [a.split("::")[0] for a in args[2:] if not a.startswith("-") and a != "slow"]
        assert paths and all((REPO / p).exists() for p in paths), f"missing test paths: {paths}"
    elif args and args[0].startswith("benchmarks/") and args[0].endswith(".py"):
        script = REPO / args[0]
        assert script.is_file(), f"{args[0]} does not exist"
        _check_argparse(_run_benchmark(script), args[1:])
    else:
        pytest.fail(f"no rule for this python command: {shlex.join(argv)} (add one to tests/test_docs.py or ALLOWED)")


def _check_curl(args: list[str]) -> None:
    """A documented request to `mlflow models serve`: its path and content type are ones the scoring server answers."""
    from mlflow.pyfunc.scoring_server import CONTENT_TYPES

    urls = [a for a in args if a.startswith("http")]
    assert len(urls) == 1 and urls[0].rsplit("/", 1)[-1] in {"invocations", "ping"}, f"not a scoring-server URL: {urls}"
    types = [
        v.split(":", 1)[1].strip()
        for flag, v in itertools.pairwise(args)
        if flag == "-H" and v.lower().startswith("content-type:")
    ]
    if urls[0].endswith("/invocations"):
        assert types and all(t in CONTENT_TYPES for t in types), f"content type {types} is not one of {CONTENT_TYPES}"


def _make_targets() -> set[str]:
    return set(re.findall(r"^([A-Za-z][\w.-]*)\s*:(?!=)", (REPO / "Makefile").read_text(), re.M))


def _check_python_block(code: str) -> None:
    compile(code, "<doc block>", "exec")
    imports = "\n".join(line for line in code.splitlines() if re.match(r"(from \S+ )?import ", line))
    exec(compile(imports, "<doc block imports>", "exec"), {})


@pytest.mark.parametrize("cmd", COMMANDS, ids=[f"{c.where} {c.text[:60]}" for c in COMMANDS])
def test_documented_command(cmd: Cmd, request, monkeypatch):
    monkeypatch.chdir(REPO)
    for needle, reason in ALLOWED.items():
        if needle in cmd.text:
            pytest.skip(reason)
    if cmd.argv == ("<python block>",):
        _check_python_block(cmd.text)
        return
    argv = _unwrap(cmd.argv)
    prog = argv[0]
    if prog in SHELL_PLUMBING:
        return  # shell plumbing around placeholder paths
    if prog in PYTHONS:
        _check_python(argv, request)
    elif prog == "ferops":
        from ferops.cli import main

        _check_argparse(main, argv[1:])
    elif prog == "dvc":
        from dvc.cli import parse_args

        try:
            parse_args(argv[1:])
        except SystemExit as e:
            assert e.code in (0, None), f"dvc rejected the documented command line (exit {e.code})"
        if argv[1:3] == ["exp", "run"]:  # -S goes through DVC's Hydra composition of conf/ (a list queues a grid)
            sets = [v for flag, v in itertools.pairwise(argv) if flag in {"-S", "--set-param"} and "$" not in v]
            _check_train(["-m", *sets])
    elif prog == "mlflow":
        _check_mlflow(argv[1:])
    elif prog == "curl":
        _check_curl(argv[1:])
    elif prog == "make":
        targets = [a for a in argv[1:] if "=" not in a and not a.startswith("-")]
        assert set(targets) <= _make_targets(), f"no such make target: {sorted(set(targets) - _make_targets())}"
    else:
        pytest.fail(f"no rule for {prog!r}: {cmd.text} (add one to tests/test_docs.py or ALLOWED)")


def test_allow_list_is_current():
    stale = [needle for needle in ALLOWED if not any(needle in c.text for c in COMMANDS)]
    assert not stale, f"ALLOWED entries no documented command uses any more: {stale}"


def test_every_doc_has_commands_checked():
    found = {c.where.split(":")[0] for c in COMMANDS}
    assert {"README.md", "data/raw/README.md", "docs/scale-out.md"} <= found
