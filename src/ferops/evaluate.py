"""`python -m ferops.evaluate MODEL DATA [--out DIR] [--usage test]`: the evaluate stage's report
for any model on any FER-format CSV or image folder. MODEL is a checkpoint (.ckpt), a deployment
bundle directory (the int8 model as deployed), an MLflow model directory, or a models:/NAME@ALIAS URI.
Only the classes the data and the model share are scored (``--class-map SRC=DST`` maps others);
what either side lacks is reported in class_sets.json."""

from __future__ import annotations

import argparse
import json

from ferops.evaluation.external import evaluate_model


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ferops.evaluate", description=__doc__)
    parser.add_argument("model", help="checkpoint (.ckpt), bundle directory, MLflow model directory or models:/NAME@ALIAS")
    parser.add_argument("data", help="FER2013-format CSV (.csv/.csv.gz) or image folder")
    parser.add_argument("--out", default="reports/external", help="report directory (default: %(default)s)")
    parser.add_argument("--usage", default=None, help="only rows of this split, e.g. PrivateTest or test")
    parser.add_argument("--on-bad-rows", default="error", choices=["error", "skip"])
    parser.add_argument(
        "--class-map",
        default=None,
        metavar="SRC=DST,...|FILE",
        help="data class -> model class pairs (e.g. contempt=disgust), or a YAML/JSON file of them; "
        "classes either side lacks are dropped and reported (class_sets.json)",
    )
    args = parser.parse_args(argv)
    try:
        result = evaluate_model(args.model, args.data, args.out, args.usage, args.on_bad_rows, args.class_map)
    except ValueError as err:
        parser.exit(2, f"python -m ferops.evaluate: {err}\n")
    m, sets = result["metrics"], result["class_sets"]
    summary = {k: round(m[k], 4) for k in ("accuracy", "macro_f1", "nll", "ece")}
    summary["macro_f1_shared"] = round(sets["macro_f1_shared"], 4)
    classes = {k: sets[k] for k in ("shared", "data_only", "model_only", "predicted_model_only")}
    print(json.dumps({"model": result["model"], **summary, "classes": classes}, indent=2))
    print(f"report: {args.out}")


if __name__ == "__main__":
    main()
