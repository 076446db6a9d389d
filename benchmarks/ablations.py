"""Ablation table: training runs of one recipe scored on the same test rows, each against a baseline.

    python benchmarks/ablations.py --baseline outputs/fer2013/short_shuffle \
        --runs outputs/fer2013/short_balanced outputs/fer2013/short_distill_ens2 --out outputs/fer2013/ablations

Each run directory is a ``python -m ferops.train`` output (``config.yaml``, ``checkpoints/best.ckpt``,
``run_state.json``). The baseline's data config gives the test split; every run must have scored the
same test rows (its split record's test digest). Each best checkpoint is loaded as untrusted and
scored on them in fp32, one view (what the training run's own test reports). Per run: accuracy
(95 % Wilson interval), macro-F1, per-class recall, and the paired bootstrap of the differences to
the baseline (accuracy and macro-F1, 2,000 resamples of the test rows). Writes ``ablations.json`` and
``ablations.md`` (the table for docs/results.md).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from ferops.evaluation.metrics import accuracy, macro_f1, per_class_metrics
from ferops.models.checkpoint import load_deployable
from ferops.registry.evidence import paired_bootstrap


def wilson(p: float, n: int, z: float = 1.96) -> tuple[float, float]:
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def delta_text(d: dict | None, scale: float, digits: int) -> str:
    if d is None:
        return "baseline"
    return f"{scale * d['delta']:+.{digits}f} ({scale * d['low']:+.{digits}f} to {scale * d['high']:+.{digits}f})"


def test_split(run_dir: Path, data_overrides: list[str]):
    cfg = OmegaConf.load(run_dir / "config.yaml")
    for override in data_overrides:
        key, value = override.split("=", 1)
        OmegaConf.update(cfg, key, value)
    datamodule = instantiate(cfg.data)
    datamodule.setup("test")
    images, labels = datamodule.split_arrays("test")
    return images, labels, list(datamodule.class_names), datamodule.split_record


@torch.no_grad()
def predict(checkpoint: Path, images: np.ndarray, batch: int = 512) -> np.ndarray:
    model, _ = load_deployable(checkpoint)
    x = torch.from_numpy(images[:, None].astype(np.float32))
    return torch.cat([model(x[i : i + batch]).argmax(-1) for i in range(0, len(x), batch)]).numpy()


def run_record(run_dir: Path, config) -> dict:
    state = json.loads((run_dir / "run_state.json").read_text())
    return {"run_id": state.get("run_id"), "name": config.tracking.get("run_name") or run_dir.name}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--baseline", type=Path, required=True, help="training output dir of the baseline run")
    p.add_argument("--runs", type=Path, nargs="+", required=True, help="training output dirs to compare")
    p.add_argument("--out", type=Path, default=Path("outputs/ablations"))
    p.add_argument(
        "--data-override",
        action="append",
        default=[],
        help="KEY=VALUE applied to the baseline's config before building the test split (e.g. a moved data.path)",
    )
    args = p.parse_args()

    images, labels, classes, split_record = test_split(args.baseline, args.data_override)
    n_classes = len(classes)
    rows, preds = [], {}
    for run_dir in [args.baseline, *args.runs]:
        theirs = OmegaConf.load(run_dir / "config.yaml")
        if run_dir != args.baseline:  # its own data config must give the same test rows and labels
            _, their_labels, _, their_record = test_split(run_dir, args.data_override)
            if their_record["test_digest"] != split_record["test_digest"] or not np.array_equal(their_labels, labels):
                raise SystemExit(
                    f"{run_dir}: its test split is not the baseline's ({their_record['test_digest']} vs {split_record['test_digest']})"
                )
        pred = predict(run_dir / "checkpoints" / "best.ckpt", images)
        preds[run_dir] = pred
        acc = accuracy(labels, pred)
        low, high = wilson(acc, len(labels))
        recall = per_class_metrics(labels, pred, n_classes)["recall"]
        row = {
            **run_record(run_dir, theirs),
            "dir": str(run_dir),
            "epochs": int(theirs.trainer.max_epochs),
            "test_acc": acc,
            "test_acc_ci": [low, high],
            "test_macro_f1": macro_f1(labels, pred, n_classes),
            "recall": dict(zip(classes, map(float, recall), strict=True)),
        }
        if run_dir != args.baseline:
            for stat in ("accuracy", "macro_f1"):
                c = paired_bootstrap(labels, pred, preds[args.baseline], n_classes, stat=stat)
                row[f"delta_{stat}"] = {"delta": c.delta, "low": c.low, "high": c.high}
        rows.append(row)
        print(f"{row['name']}: acc {acc:.4f} ({low:.4f}-{high:.4f}), macro-F1 {row['test_macro_f1']:.4f}", flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    result = {"test_rows": len(labels), "split": split_record, "classes": classes, "runs": rows}
    (args.out / "ablations.json").write_text(json.dumps(result, indent=2, default=str))
    header = (
        "| run | epochs | test acc (95 % CI) | Δ acc vs baseline (95 % paired CI) | macro-F1 | Δ macro-F1 (95 % CI) | "
        + " | ".join(f"recall {c}" for c in classes)
    )
    lines = [header + " |", "|" + "---|" * (6 + n_classes)]
    for r in rows:
        d_acc, d_f1 = r.get("delta_accuracy"), r.get("delta_macro_f1")
        lines.append(
            f"| {r['name']} | {r['epochs']} | {100 * r['test_acc']:.2f} % ({100 * r['test_acc_ci'][0]:.1f}–{100 * r['test_acc_ci'][1]:.1f}) "
            f"| {delta_text(d_acc, 100, 2)} | {r['test_macro_f1']:.3f} | {delta_text(d_f1, 1, 3)} | "
            + " | ".join(f"{r['recall'][c]:.3f}" for c in classes)
            + " |"
        )
    (args.out / "ablations.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
