"""`python -m ferops.evaluate MODEL DATA [--out DIR] [--usage test]`: the evaluate stage's report
for any model on any FER-format CSV or image folder. MODEL is a checkpoint (.ckpt), a deployment
bundle directory (the int8 model as deployed), an MLflow model directory, or a models:/NAME@ALIAS URI."""

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
    args = parser.parse_args(argv)
    result = evaluate_model(args.model, args.data, args.out, args.usage, args.on_bad_rows)
    m = result["metrics"]
    print(json.dumps({"model": result["model"], **{k: round(m[k], 4) for k in ("accuracy", "macro_f1", "nll", "ece")}}, indent=2))
    print(f"report: {args.out}")


if __name__ == "__main__":
    main()
