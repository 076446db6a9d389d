"""Compose conf/ into params.yaml, as `dvc exp run` does with hydra.enabled (`make params`).

`dvc repro` reads params.yaml but only `dvc exp run` re-composes it, so after editing conf/ run
this (a test checks that the committed params.yaml matches conf/)."""

from __future__ import annotations

import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

CONF_DIR = Path("conf")


def compose_params(overrides: list[str] | None = None, conf_dir: Path = CONF_DIR) -> DictConfig:
    with initialize_config_dir(config_dir=str(conf_dir.resolve()), version_base="1.3"):
        cfg = compose(config_name="config", overrides=list(overrides or []))
    OmegaConf.resolve(cfg)  # DVC resolves too: params.yaml holds plain values
    return cfg


def main(argv: list[str] | None = None) -> None:
    overrides = list(sys.argv[1:] if argv is None else argv)
    Path("params.yaml").write_text(OmegaConf.to_yaml(compose_params(overrides)))
    print(f"params.yaml composed from {CONF_DIR}/ {' '.join(overrides)}".rstrip())


if __name__ == "__main__":
    main()
