"""`python -m ferops.train [overrides]`: one training run (or a sweep with -m)."""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from ferops.training.resume import find_run_dir
from ferops.training.run import main_metric, train


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    hydra_cfg = HydraConfig.get()
    # resume=true|PATH continues an earlier run directory; its Hydra run dir stays empty.
    runs_root = Path(hydra_cfg.run.dir).parent
    output_dir = cfg.paths.output_dir or find_run_dir(cfg.get("resume"), runs_root) or hydra_cfg.runtime.output_dir
    return main_metric(train(cfg, output_dir), cfg.optimized_metric)


if __name__ == "__main__":
    main()
