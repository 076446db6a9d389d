"""Typed option objects built from config blocks (export, registry): unknown keys are errors,
so a typo in a DVC parameter or a Hydra override fails loudly instead of being ignored."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any, TypeVar

T = TypeVar("T")


def build_dataclass(cls: type[T], data: Mapping[str, Any], where: str) -> T:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown {where} option(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    return cls(**dict(data))
