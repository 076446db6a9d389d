"""`python -m ferops.explain CKPT DATA [--out DIR] [--usage test] [--per-class N] [--seed S]`:
Grad-CAM and Grad-CAM++ panels (one PNG per class + index.json, see ferops.evaluation.explain) of a
checkpoint on a FER-format CSV, an image folder, or the pipeline's prepared data (data/prepared).
CKPT must be a Lightning checkpoint (.ckpt): the CAMs need the torch model's gradients, which an
int8 bundle does not have. It is loaded as untrusted (ferops.models.checkpoint.load_deployable)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ferops.data import load_prepared
from ferops.data.constants import usage_of
from ferops.data.prepare import PREPARED_META
from ferops.evaluation.explain import DEFAULT_PER_CLASS, DEFAULT_SEED, write_explanations
from ferops.evaluation.external import ScoredModel, load_external, open_model


def load_probe_data(
    data: Path, scored: ScoredModel, usage: str | None, on_bad_rows: str
) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
    """(images, labels, ids) of ``data``: a prepared directory's split (``usage``, default test), or
    what :func:`ferops.evaluation.external.load_external` reads from a CSV or image folder."""
    if (data / PREPARED_META).is_file():
        prepared = load_prepared(data)
        if prepared.class_names != scored.class_names:
            raise ValueError(f"{data}: prepared classes {prepared.class_names} are not the model's classes {scored.class_names}")
        split = (usage_of(usage) or usage) if usage else "test"
        if split not in prepared.splits:
            raise ValueError(f"{data}: no split {usage!r} (prepared splits: {sorted(prepared.splits)})")
        chosen = prepared.splits[split]
        return chosen.images, chosen.labels, [str(i) for i in chosen.ids]
    external = load_external(data, scored.class_map, usage, on_bad_rows)
    return external.images, external.labels, None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ferops.explain", description=__doc__)
    parser.add_argument("checkpoint", help="Lightning checkpoint (.ckpt)")
    parser.add_argument("data", help="FER2013-format CSV (.csv/.csv.gz), image folder, or a prepared directory (data/prepared)")
    parser.add_argument("--out", default="reports/explain", help="panel directory (default: %(default)s)")
    parser.add_argument(
        "--usage", default=None, help="only rows of this split, e.g. PublicTest or test (prepared data: default test)"
    )
    parser.add_argument("--per-class", type=int, default=DEFAULT_PER_CLASS, help="probe faces per class (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the probe draw (default: %(default)s)")
    parser.add_argument("--on-bad-rows", default="error", choices=["error", "skip"])
    args = parser.parse_args(argv)

    ckpt = Path(args.checkpoint)
    if not ckpt.is_file():
        parser.error(f"{ckpt}: not a checkpoint file (Grad-CAM needs a .ckpt; a bundle has no gradients)")
    if args.per_class < 1:
        parser.error(f"--per-class must be at least 1, got {args.per_class}")
    scored = open_model(ckpt)  # loaded as untrusted; its class map checked against its classes
    model = scored.torch_model
    images, labels, ids = load_probe_data(Path(args.data), scored, args.usage, args.on_bad_rows)
    probs, _ = scored.probabilities(images)
    index = write_explanations(model, images, labels, probs, scored.class_names, args.out, args.per_class, args.seed, ids)
    print(json.dumps({"target_layer": index["target_layer"]["name"], "files": [c["file"] for c in index["classes"]]}, indent=2))
    print(f"panels: {args.out}")


if __name__ == "__main__":
    main()
