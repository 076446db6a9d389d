"""prepare: raw source -> validated, decoded split arrays (data/prepared) + data report.

A bad raw file stops here with the data layer's error before anything is written, so the
previous outputs stay as they were (the outs are `persist: true` in dvc.yaml)."""

from __future__ import annotations

import sys

from hydra.utils import instantiate
from omegaconf import open_dict

from ferops.data import DataValidationError, save_prepared
from ferops.evaluation.report import write_data_report
from ferops.stages.common import PREPARED_DIR, REPORTS, load_params, setup_logging, write_json

OUT = REPORTS / "prepare"


def main() -> None:
    setup_logging()
    cfg = load_params()
    with open_dict(cfg):
        cfg.data.quarantine_path = str(OUT / "quarantine.csv")
        cfg.data.prepared_dir = None
    datamodule = instantiate(cfg.data)
    try:
        datamodule.setup("fit")
    except DataValidationError as err:
        sys.exit(f"prepare: {err}")
    data = datamodule.data
    save_prepared(data, PREPARED_DIR)
    splits = {name: (s.images, s.labels) for name, s in data.splits.items()}
    write_data_report(splits, data.class_names, OUT, stats=None, sample_split="train")
    report = data.report
    write_json(
        OUT / "stats.json",
        {
            "dataset": report["dataset"],
            "fingerprint": report["fingerprint"],
            "counts": report["counts"],
            "duplicates": {
                k: report["duplicates"][k]
                for k in ("n_groups", "cross_split", "conflicting_labels", "dropped_from_eval")
                if k in report["duplicates"]
            },
            "quarantined": data.quarantined,
            "split": data.split_record,
        },
    )


if __name__ == "__main__":
    main()
