"""train: prepared arrays -> checkpoint, the pipeline's MLflow run (outputs/run_id.txt),
training metrics and curves."""

from __future__ import annotations

import shutil

import mlflow
from omegaconf import open_dict

from ferops import tracking
from ferops.stages.common import PREPARED_DIR, REPORTS, TRAIN_DIR, dvc_tags, load_params, setup_logging, write_json
from ferops.training.run import train

OUT = REPORTS / "train"


def main() -> None:
    setup_logging()
    cfg = load_params()
    with open_dict(cfg):
        cfg.data.prepared_dir = str(PREPARED_DIR)
    # Train into a directory DVC does not manage (it deletes declared outs before a run), so a
    # killed run's last.ckpt survives for `resume=true`; swap it in as outputs/train when done.
    partial = TRAIN_DIR.with_name(TRAIN_DIR.name + ".partial")
    if partial.exists() and not cfg.get("resume"):
        shutil.rmtree(partial)  # stale checkpoints from an earlier run must not be picked up
    result = train(cfg, partial)
    if TRAIN_DIR.exists():
        shutil.rmtree(TRAIN_DIR)
    partial.rename(TRAIN_DIR)
    result.output_dir, result.best_checkpoint = TRAIN_DIR, TRAIN_DIR / result.best_checkpoint.relative_to(partial.resolve())
    tracking.write_run_id(result.run_id)
    with tracking.start_run(cfg.tracking.experiment, run_id=result.run_id):
        mlflow.set_tags({**dvc_tags(), "pipeline": "dvc"})
    keep = ("train/", "val/", "test/")
    write_json(OUT / "metrics.json", {k: v for k, v in result.metrics.items() if k.startswith(keep) and "/recall/" not in k})
    OUT.mkdir(parents=True, exist_ok=True)
    shutil.copy(result.output_dir / "training_curves.png", OUT / "training_curves.png")


if __name__ == "__main__":
    main()
