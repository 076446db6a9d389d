"""`python -m ferops.train [overrides]`: one training run (or a sweep with -m)."""

from __future__ import annotations

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from ferops.training.train import main_metric, train


@hydra.main(version_base="1.3", config_path="../../conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    output_dir = cfg.paths.output_dir or HydraConfig.get().runtime.output_dir
    return main_metric(train(cfg, output_dir), cfg.optimized_metric)


if __name__ == "__main__":
    main()
