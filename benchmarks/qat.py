"""Post-training quantisation vs quantisation-aware fine-tuning, per model, on a fixed short budget.

    python benchmarks/qat.py --data ../shared/data/fer2013/fer2013.csv.gz --out outputs/qat \
        --models fer_vgg mobilenetv3_small_100 tf_mobilenetv3_small_minimal_100 --epochs 6 --qat-epochs 2

For each model: the ``fer2013_cpu`` recipe for ``--epochs`` epochs (fp32 checkpoint), its int8 export
(PTQ), a QAT fine-tune of that checkpoint for ``--qat-epochs`` epochs (``qat.enabled=true``), its int8
export. Every export scores the test split (PublicTest: nothing selects on it) with the export gates
recorded, not enforced. Writes ``results.json`` and ``results.md`` (the table for docs/results.md).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import mlflow
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
TIMM_MODELS = ("mobilenetv3_small_100", "tf_mobilenetv3_small_minimal_100")


def compose_run(overrides: list[str]):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


def export_scores(checkpoint: Path, splits: dict, out: Path) -> dict:
    from ferops.export import run_export
    from ferops.models.checkpoint import load_deployable

    model, meta = load_deployable(checkpoint)
    train, test = splits["train"], splits["test"]
    cfg = {"edgetpu_compiler": "off", "gates": {"enforce": False}, "n_latency_runs": 20, "progress": False}
    report = run_export(model, meta, train.images, train.labels, test.images, test.labels, out, cfg)
    metrics = report["metrics"]
    int8, fp32 = metrics["tflite_int8"], metrics["pytorch"]
    return {
        "fp32_acc": fp32["accuracy"],
        "int8_acc": int8["accuracy"],
        "drop_points": int8["accuracy_drop_points"],
        "agreement": int8["top1_agreement"],
        "gates_passed": bool(metrics["gates_passed"]),
        "gate_failures": [g["name"] for g in report["gates"] if not g["passed"]],
        "bundle": str(report["bundle_dir"]),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="FER2013 CSV (Training + PublicTest rows)")
    p.add_argument("--out", type=Path, default=Path("outputs/qat"))
    p.add_argument("--models", nargs="+", default=["fer_vgg", *TIMM_MODELS])
    p.add_argument("--epochs", type=int, default=6, help="fp32 training epochs per model")
    p.add_argument("--qat-epochs", type=int, default=2)
    p.add_argument("--tracking-uri", default=None, help="MLflow store (default: the project's)")
    args = p.parse_args()
    if args.tracking_uri:
        mlflow.set_tracking_uri(args.tracking_uri)
    from ferops.training.run import train

    results = args.out / "results.json"  # rows of earlier invocations are kept (one per model)
    rows = [r for r in (json.loads(results.read_text()) if results.is_file() else []) if r["model"] not in args.models]
    for name in args.models:
        base = [
            "experiment=fer2013_cpu",
            f"model={name}",
            f"data.path={args.data}",
            f"trainer.max_epochs={args.epochs}",
            "trainer.enable_progress_bar=false",
            "tracking.experiment=ferops-qat-benchmark",
            "export.tta=none",
        ]
        if name in TIMM_MODELS:  # the preset's fer_vgg widths are no timm arguments
            base += ["~model.backbone_kwargs.widths", "~model.backbone_kwargs.convs_per_stage"]
        t0 = time.time()
        fp32 = train(compose_run(base), args.out / name / "fp32")
        t_fp32 = time.time() - t0
        cfg = compose_run(base)
        datamodule = instantiate(cfg.data)
        datamodule.setup("fit")
        splits = datamodule.data.splits
        ptq = export_scores(fp32.best_checkpoint, splits, args.out / name / "export_ptq")
        t0 = time.time()
        qat_overrides = ["qat.enabled=true", f"qat.from={fp32.best_checkpoint}", f"qat.epochs={args.qat_epochs}"]
        tuned = train(compose_run([*base, *qat_overrides]), args.out / name / "qat")
        t_qat = time.time() - t0
        qat = export_scores(tuned.best_checkpoint, splits, args.out / name / "export_qat")
        row = {"model": name, "fp32_train_s": round(t_fp32), "qat_train_s": round(t_qat), "ptq": ptq, "qat": qat}
        rows.append(row)
        print(json.dumps(row), flush=True)
        results.write_text(json.dumps(rows, indent=2))

    lines = [
        "| model | fp32 test acc | PTQ int8 acc | PTQ drop | PTQ agreement | QAT fp32 acc | QAT int8 acc | QAT drop | QAT agreement | gates PTQ / QAT |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        a, b = r["ptq"], r["qat"]
        gates = f"{'pass' if a['gates_passed'] else 'fail'} / {'pass' if b['gates_passed'] else 'fail'}"
        lines.append(
            f"| {r['model']} | {100 * a['fp32_acc']:.2f} % | {100 * a['int8_acc']:.2f} % | {a['drop_points']:+.2f} | "
            f"{100 * a['agreement']:.1f} % | {100 * b['fp32_acc']:.2f} % | {100 * b['int8_acc']:.2f} % | {b['drop_points']:+.2f} | "
            f"{100 * b['agreement']:.1f} % | {gates} |"
        )
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
