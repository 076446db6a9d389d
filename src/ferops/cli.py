"""`ferops` command line: thin subcommands over the packages (all logic is importable and tested there).

    ferops promote  [--name N] [--margin M] [--dry-run] [--json]
    ferops rollback [--name N] [--dry-run]
    ferops runs     [--experiment E] [-n 10]
    ferops models   [--name N]
    ferops sweep-report [PARENT_RUN] [--experiment E] [--metric M] [--out DIR] [--no-log]
    ferops predict  PATH... | --webcam [INDEX] [--model BUNDLE_DIR] [--out DIR] [--json FILE] [--min-face PX] [--smooth ALPHA]

Global options (before the subcommand): --tracking-uri (else $MLFLOW_TRACKING_URI, else the
project store), --config (params.yaml or a registry yaml; default: ./params.yaml's `registry:`
block, else conf/registry/default.yaml).

Adding a subcommand: write `_<name>_args(parser)` and `_<name>(args) -> int` (import what it
needs inside, so `ferops --help` stays fast) and add one `Command` row to `COMMANDS`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

DEFAULT_EXPERIMENT = "ferops"


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def _registry_config(args: argparse.Namespace, **overrides):
    from ferops.registry.config import load_registry_config

    return load_registry_config(args.config, **overrides)


def _default_experiment() -> str:
    """`tracking.experiment` of ./params.yaml when there is one (the DVC flow), else "ferops"."""
    params = Path("params.yaml")
    if params.is_file():
        import yaml

        data = yaml.safe_load(params.read_text()) or {}
        return str((data.get("tracking") or {}).get("experiment") or DEFAULT_EXPERIMENT)
    return DEFAULT_EXPERIMENT


# -- promote / rollback ------------------------------------------------------------------------
def _promote_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", help="registered model name (default: registry.name of the config)")
    p.add_argument("--margin", type=float, help="minimum win on the metric (default: registry.margin)")
    p.add_argument("--dry-run", action="store_true", help="print the decision, change nothing")
    p.add_argument("--json", action="store_true", help="print the decision as JSON")


def _promote(args: argparse.Namespace) -> int:
    from ferops.registry.promote import promote

    cfg = _registry_config(args, name=args.name, margin=args.margin)
    d = promote(
        cfg.name,
        margin=cfg.margin,
        gates=cfg.gates,
        dry_run=args.dry_run,
        metric=cfg.metric,
        resamples=cfg.bootstrap_resamples,
        confidence=cfg.confidence,
    )
    print(json.dumps(d.to_dict(), indent=2) if args.json else d.summary())
    return 0


def _rollback_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", help="registered model name (default: registry.name of the config)")
    p.add_argument("--dry-run", action="store_true", help="print what would happen, change nothing")


def _rollback(args: argparse.Namespace) -> int:
    from ferops.registry.promote import NOOP, rollback

    d = rollback(_registry_config(args, name=args.name).name, dry_run=args.dry_run)
    print(d.summary())
    return 1 if d.action == NOOP else 0


# -- tables ------------------------------------------------------------------------------------
def _runs_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--experiment", help=f"experiment name (default: tracking.experiment of params.yaml, else {DEFAULT_EXPERIMENT})"
    )
    p.add_argument("-n", type=int, default=10, help="how many runs, newest first (default: 10)")


def _runs(args: argparse.Namespace) -> int:
    from ferops.registry.reports import RUN_COLUMNS, format_table, recent_runs

    print(format_table(recent_runs(args.experiment or _default_experiment(), args.n), RUN_COLUMNS))
    return 0


def _models_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", help="registered model name (default: registry.name of the config)")


def _models(args: argparse.Namespace) -> int:
    from ferops.registry.reports import VERSION_COLUMNS, format_table, model_versions

    name = _registry_config(args, name=args.name).name
    rows = model_versions(name)
    if not rows:
        print(f"no versions of {name!r}")
        return 1
    print(format_table(rows, VERSION_COLUMNS))
    return 0


# -- sweeps ------------------------------------------------------------------------------------
def _sweep_report_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("parent_run", nargs="?", help="run id of the sweep's parent run (default: the newest sweep)")
    p.add_argument("--experiment", help="with no PARENT_RUN: newest sweep of this experiment (default: any)")
    p.add_argument("--metric", default="val/macro_f1_best", help="metric compared across runs (default: val/macro_f1_best)")
    p.add_argument("--out", help="output directory (default: reports/sweeps/<parent run id>)")
    p.add_argument("--no-log", action="store_true", help="only write the files, do not log them to the parent run")


def _sweep_report(args: argparse.Namespace) -> int:
    from ferops.sweeps.report import latest_sweep, sweep_report, to_markdown

    parent = args.parent_run or latest_sweep(args.experiment)
    df, paths = sweep_report(
        parent, Path(args.out or f"reports/sweeps/{parent}"), metric=args.metric, log_to_parent=not args.no_log
    )
    print(paths["summary_md"].read_text() if "summary_md" in paths else to_markdown(df))
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


# -- predict -----------------------------------------------------------------------------------
def _predict_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="*", metavar="PATH", help="images, videos and folders (searched recursively)")
    p.add_argument("--webcam", nargs="?", type=int, const=0, metavar="INDEX", help="read a camera instead (default index: 0)")
    p.add_argument("--model", metavar="BUNDLE_DIR", help="deployment bundle (default: the FER2013 model shipped in the package)")
    p.add_argument("--out", metavar="DIR", help="write annotated copies (box, label, probability bars; videos as .mp4) here")
    p.add_argument("--json", metavar="FILE", help="write the JSON lines here (default: standard output)")
    p.add_argument("--min-face", type=int, default=0, metavar="PX", help="drop faces whose box is shorter (default: 0)")
    p.add_argument("--min-score", type=float, default=0.5, metavar="P", help="face detector score threshold (default: 0.5)")
    # literal choices keep `ferops --help` from importing the runtime; tests/runtime/test_video.py checks
    # they are ferops.runtime.faces.DETECTORS (+ auto) and ferops.runtime.bundle.TTA_VIEWS
    p.add_argument(
        "--detector",
        choices=["full", "short", "haar", "auto"],
        default="full",
        help="BlazeFace full or short range, haar (OpenCV's cascade: the fallback), or auto "
        "(full; haar when the BlazeFace weights package is missing) (default: full)",
    )
    p.add_argument(
        "--tta",
        choices=["none", "hflip"],
        help="test-time augmentation: hflip also classifies each face mirrored and averages (default: the bundle's)",
    )
    p.add_argument("--max-pixels", type=int, help="refuse larger images before decoding (default: 64 megapixels)")
    # literal defaults keep `ferops --help` from importing the runtime; tests/runtime/test_video.py checks
    # they are ferops.runtime.video's
    video = p.add_argument_group("video and webcam")
    video.add_argument(
        "--smooth",
        type=float,
        default=0.3,
        metavar="ALPHA",
        help="smoothing of each track's probabilities, 1 = none (default: 0.3)",
    )
    video.add_argument(
        "--track-iou", type=float, default=0.3, metavar="IOU", help="box overlap that continues a track (default: 0.3)"
    )
    video.add_argument(
        "--track-expire", type=int, default=10, metavar="N", help="a track unmatched N frames in a row ends (default: 10)"
    )
    video.add_argument("--max-frames", type=int, metavar="N", help="stop each video or the webcam after N frames")


def _predict(args: argparse.Namespace) -> int:
    # OpenCV's own warnings would repeat, less clearly, the error lines printed here for a bad video
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    from typing import IO

    from ferops.runtime.faces import FaceDetectorError
    from ferops.runtime.predictor import (
        DEFAULT_MAX_PIXELS,
        VIDEO_SUFFIXES,
        FacePredictor,
        PredictSummary,
        annotated_path,
        predict_files,
    )
    from ferops.runtime.video import VideoOptions, open_video, predict_video

    if bool(args.paths) == (args.webcam is not None):
        print("ferops predict: give image/video PATHs or --webcam [INDEX], not both or neither", file=sys.stderr)
        return 2
    if args.max_frames is not None and args.max_frames < 1:
        print(f"ferops predict: --max-frames must be >= 1, got {args.max_frames}", file=sys.stderr)
        return 2
    try:
        video = VideoOptions(args.smooth, args.track_iou, args.track_expire, args.max_frames)
        video.tracker()  # checks the tracking options before any input is read
        predictor = FacePredictor(
            args.model,
            detector=args.detector,
            min_score=args.min_score,
            min_face=args.min_face,
            max_pixels=args.max_pixels or DEFAULT_MAX_PIXELS,
            tta=args.tta,
        )
    except (FaceDetectorError, ValueError) as err:
        print(f"ferops predict: {err}", file=sys.stderr)
        return 2

    def report(file: Path, reason: str) -> None:
        print(f"ferops predict: {file}: {reason}", file=sys.stderr)

    def run(json_out: IO[str]) -> PredictSummary | str:
        """The summary, or the error that ends the run (a camera that cannot be opened or read)."""
        if args.webcam is None:
            progress = any(Path(p).is_dir() or Path(p).suffix.lower() in VIDEO_SUFFIXES for p in args.paths)
            return predict_files(predictor, args.paths, json_out, out_dir, report, progress, video)
        summary = PredictSummary(videos=1)
        try:
            with open_video(args.webcam) as camera:  # the same frame loop as a video file
                target = annotated_path(out_dir, Path(f"webcam{args.webcam}.mp4")) if out_dir else None
                predict_video(predictor, camera, json_out, summary, video, target, progress=True)
        except ValueError as err:  # VideoError, or a frame over --max-pixels (ImageDecodeError)
            return f"camera {args.webcam}: {err}"
        return summary

    out_dir = Path(args.out) if args.out else None
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        with open(args.json, "w", encoding="utf-8") as fh:
            result = run(fh)
    else:
        result = run(sys.stdout)
    if isinstance(result, str):
        print(f"ferops predict: {result}", file=sys.stderr)
        return 2
    print(f"ferops predict: {result.line()}", file=sys.stderr)
    if result.interrupted and args.webcam is None:
        return 130  # the shell's status for Ctrl-C: not every input was read (for a camera it is the way to stop)
    return 1 if result.failed else 0


COMMANDS: list[Command] = [
    Command("promote", "move `champion` to `challenger` if it passes the gates and wins", _promote_args, _promote),
    Command("rollback", "move `champion` back to `previous-champion`", _rollback_args, _rollback),
    Command("runs", "recent runs of an experiment with their key metrics", _runs_args, _runs),
    Command("models", "versions of a registered model with aliases and key metric tags", _models_args, _models),
    Command(
        "sweep-report",
        "compare a sweep's child runs (table, backbone x loss heatmap); log it to the parent run",
        _sweep_report_args,
        _sweep_report,
    ),
    Command(
        "predict",
        "faces and their expressions in photos, videos, a webcam (JSON lines, annotated copies)",
        _predict_args,
        _predict,
    ),
]


def build_parser(commands: Sequence[Command] = COMMANDS) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ferops", description="ferops: registry, promotion and run reports.")
    parser.add_argument("--tracking-uri", help="MLflow store (default: $MLFLOW_TRACKING_URI, else sqlite:///mlruns/mlflow.db)")
    parser.add_argument(
        "--config", help="params.yaml or a registry yaml (default: ./params.yaml, else conf/registry/default.yaml)"
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for cmd in commands:
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        cmd.add_arguments(p)
        p.set_defaults(_run=cmd.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.tracking_uri:
        os.environ["MLFLOW_TRACKING_URI"] = args.tracking_uri
    try:
        return args._run(args)
    except (LookupError, FileNotFoundError, ValueError) as err:
        print(f"ferops {args.command}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
