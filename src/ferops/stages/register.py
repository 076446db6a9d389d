"""register: the pipeline run's export -> a new version of the registered model (alias
`challenger`), promoted to `champion` right away when `registry.auto_promote` and the gates allow.

    python -m ferops.stages.register [--out outputs/register/registered.json] [--bundle ...]

Reads the `registry:` block of params.yaml (conf/registry/default.yaml); the work is
`ferops.registry.register_and_promote.register_stage`.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from omegaconf import OmegaConf

from ferops import tracking
from ferops.registry.config import RegistryConfig
from ferops.registry.register_and_promote import register_stage
from ferops.stages.common import CHECKPOINT, EXPORT_DIR, EXPORT_METRICS, PARAMS, load_params, setup_logging, write_json

OUT = Path("outputs/register/registered.json")
log = logging.getLogger("ferops.stages.register")


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m ferops.stages.register", description=__doc__.splitlines()[0])
    p.add_argument("--params", type=Path, default=PARAMS, help="file with the `registry:` block")
    p.add_argument("--run-id-file", type=Path, default=Path(tracking.RUN_ID_FILE))
    p.add_argument("--export-metrics", type=Path, default=EXPORT_METRICS)
    p.add_argument("--bundle", type=Path, default=EXPORT_DIR / "bundle")
    p.add_argument("--onnx", type=Path, default=EXPORT_DIR / "exports" / "model.onnx")
    p.add_argument("--checkpoint", type=Path, default=CHECKPOINT)
    p.add_argument(
        "--predictions",
        type=Path,
        default=EXPORT_DIR / "exports" / "eval_predictions.npz",
        help="int8 val predictions with row ids (the paired bootstrap of promotion reads them)",
    )
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    setup_logging()

    params = load_params(args.params)
    cfg = RegistryConfig.from_mapping(OmegaConf.to_container(params.get("registry") or {}, resolve=True))
    result = register_stage(cfg, args.run_id_file, args.export_metrics, args.bundle, args.onnx, args.checkpoint, args.predictions)
    write_json(args.out, result)
    promotion = result["promotion"]
    log.info(
        "%s version %s %s%s",
        cfg.name,
        result["version"],
        result["aliases"],
        f"; {promotion['action']}: {promotion['reason']}" if promotion else "",
    )


if __name__ == "__main__":
    main()
