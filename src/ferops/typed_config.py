"""Typed option objects built from config blocks (export, registry): unknown keys are errors,
so a typo in a DVC parameter or a Hydra override fails loudly instead of being ignored.

The dataclass is the one source of truth for an option's name, default and description: the
Hydra group's YAML (``conf/<group>/default.yaml``) is generated from it by :func:`dataclass_yaml`
(``python -m ferops.typed_config`` writes every file in :data:`GENERATED_CONF`), and a test checks
the committed file is what the dataclass generates.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, Field, field, fields, is_dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import yaml

T = TypeVar("T")

__all__ = ["GENERATED_CONF", "build_dataclass", "dataclass_yaml", "generated_conf_text", "option", "write_generated_conf"]

# conf/ file -> "module:function" returning its text (imported only when writing or checking).
GENERATED_CONF = {
    "export/default.yaml": "ferops.export.config:export_conf_yaml",
    "registry/default.yaml": "ferops.registry.config:registry_conf_yaml",
}


def build_dataclass(cls: type[T], data: Mapping[str, Any], where: str) -> T:
    known = {f.name for f in fields(cast(Any, cls))}  # T is any dataclass
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown {where} option(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    return cls(**dict(data))


def option(default: Any, doc: str = "", *, section: str = "") -> Any:
    """A dataclass field with an immutable default, its description (the YAML comment after the key)
    and, optionally, a ``section`` comment written above it (``" "``: a blank line only)."""
    return field(default=default, metadata={"doc": doc, "section": section})


def dataclass_yaml(cls: type, header: str = "") -> str:
    """The YAML of ``cls``'s defaults with each field's ``doc`` as a comment (nested dataclasses as blocks)."""
    lines = [f"# {line}".rstrip() for line in header.strip().splitlines()] if header else []
    if lines:
        lines.append("")
    _emit(cls, lines, indent="")
    return "\n".join(lines) + "\n"


def _emit(cls: type, lines: list[str], indent: str) -> None:
    # the declared defaults, not an instance's: __post_init__ may fill a null in (export.calibration_seed)
    for f in fields(cls):
        value = f.default_factory() if f.default is MISSING and f.default_factory is not MISSING else f.default
        section = f.metadata.get("section", "")
        if section:
            if lines and lines[-1] != "" and not indent:
                lines.append("")
            lines.extend(f"{indent}# {s}".rstrip() for s in section.strip().splitlines())  # " ": a blank line only
        doc, key = _doc(f), _scalar(f.name)  # a key like `on` must stay a string key
        if is_dataclass(value):
            lines.append(f"{indent}{key}:" + (f"  # {doc}" if doc else ""))
            _emit(type(value), lines, indent + "  ")
            continue
        entry = f"{indent}{key}: {_scalar(value)}"
        lines.append(f"{entry:<32}  # {doc}" if doc else entry)


def _doc(f: Field[Any]) -> str:
    return str(f.metadata.get("doc", "")).strip()


def _scalar(value: Any) -> str:
    # flow style of a one-item list gives a bare scalar (null, true, 0.001, quoted when ambiguous)
    return str(yaml.safe_dump([value], default_flow_style=True, width=1_000)).strip()[1:-1]


def generated_conf_text(name: str) -> str:
    """The text ``GENERATED_CONF[name]`` generates."""
    from importlib import import_module

    module, func = GENERATED_CONF[name].split(":")
    return str(getattr(import_module(module), func)())


def write_generated_conf(conf_dir: Path = Path("conf")) -> list[Path]:
    written = []
    for name in GENERATED_CONF:
        path = conf_dir / name
        path.write_text(generated_conf_text(name), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":  # from the repository root, like `make params` (run that afterwards)
    for path in write_generated_conf():
        print(f"{path} generated")
