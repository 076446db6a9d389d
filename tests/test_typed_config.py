"""Config dataclasses are the one source of their defaults: conf/<group>/default.yaml is generated from them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from ferops.typed_config import GENERATED_CONF, build_dataclass, dataclass_yaml, generated_conf_text, option

CONF = Path(__file__).resolve().parents[1] / "conf"


@pytest.mark.parametrize("name", sorted(GENERATED_CONF))
def test_committed_conf_is_what_the_dataclass_generates(name):
    assert (CONF / name).read_text() == generated_conf_text(name), "run `python -m ferops.typed_config`, then `make params`"


@dataclass
class _Inner:
    on: bool = option(True, "a switch")


@dataclass
class _Outer:
    n: int = option(3, "how many", section="Counting.")
    name: str = option("off")  # a YAML 1.1 boolean word: must come back as the string
    limit: float | None = option(None)
    inner: _Inner = field(default_factory=_Inner)


def test_dataclass_yaml_round_trips_and_documents():
    text = dataclass_yaml(_Outer, "Header line.")
    assert text.startswith("# Header line.\n") and "# Counting.\nn: 3" in text and "# how many" in text
    assert build_dataclass(_Outer, yaml.safe_load(text) | {"inner": _Inner(**yaml.safe_load(text)["inner"])}, "t") == _Outer()
    with pytest.raises(ValueError, match="unknown t option"):
        build_dataclass(_Outer, {"m": 1}, "t")
