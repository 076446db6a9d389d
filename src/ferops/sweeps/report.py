"""Sweep report: the child runs of a sweep's parent run, compared, from MLflow alone.

    sweep_report(parent_run_id, out_dir) -> (runs DataFrame, {name: path})

writes and (by default) logs to the parent run under `sweep_report/`:
  runs.csv / runs.md        one row per child: model, loss, status, job, its overrides, metrics
  summary.csv / summary.md  best `metric` per backbone x loss (max over the children)
  heatmap.png               that table as a heatmap
  tradeoff.png              metric vs parameter count / latency, when children logged them
and on the parent: metric `best/<metric>`, tags `sweep.best_run_id`, `sweep.best_model`,
`sweep.best_loss`, `sweep.n_runs`, `sweep.n_finished`.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd

from ferops import tracking
from ferops.tracking import child_runs  # moved to tracking; also keeps ferops.sweeps.report.child_runs working

log = logging.getLogger(__name__)

DEFAULT_METRIC = "val/macro_f1_best"
HEADLINE_METRICS = ("val/macro_f1_best", "val/macro_f1", "val/acc", "test/macro_f1", "test/acc", "test/loss")
# First match wins: what a child may log about its size and speed (metric, param or tag names).
SIZE_KEYS = ("model/num_params", "model.num_params", "num_params")
LATENCY_KEYS = ("latency.ms", "latency/ms", "latency_ms", "latency_median_ms", "tflite.latency_median_ms")
ARTIFACT_PATH = "sweep_report"


def latest_sweep(experiment: str | None = None, tracking_uri: str | None = None) -> str:
    """Run id of the newest sweep parent (tag ferops.sweep=true), in `experiment` or in any experiment."""
    client = tracking.client(tracking_uri)
    if experiment:
        exp = client.get_experiment_by_name(experiment)
        if exp is None:
            raise LookupError(f"no experiment {experiment!r}")
        ids = [exp.experiment_id]
    else:
        ids = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(
        ids, filter_string="tags.`ferops.sweep` = 'true'", order_by=["attributes.start_time DESC"], max_results=1
    )
    if not runs:
        raise LookupError(f"no sweep parent run (tag ferops.sweep=true) in {experiment or 'any experiment'}")
    return runs[0].info.run_id


def _parse_overrides(text: str) -> dict[str, str]:
    out = {}
    for item in text.split():
        key, sep, value = item.partition("=")
        if sep:
            out[key.lstrip("+~")] = value
    return out


def _first(values: dict, keys) -> float | None:
    for key in keys:
        if key in values:
            try:
                return float(values[key])
            except (TypeError, ValueError):
                continue
    return None


def runs_frame(runs: list, metric: str = DEFAULT_METRIC) -> pd.DataFrame:
    """One row per run: identity, sweep overrides (one column each), headline metrics, size, latency."""
    rows, override_keys = [], {}
    for r in runs:
        tags, params, metrics = r.data.tags, r.data.params, r.data.metrics
        loss = tags.get("loss") or params.get("loss._target_", "").rsplit(".", 1)[-1] or None
        end = r.info.end_time or r.info.start_time
        row = {
            "run_id": r.info.run_id,
            "run_name": r.info.run_name,
            "status": r.info.status,
            "model": tags.get("model") or params.get("model.name"),
            "loss": loss,
            "job": int(tags["sweep.job_num"]) if tags.get("sweep.job_num", "").isdigit() else None,
            "overrides": tags.get("sweep.overrides", ""),
            **{m: metrics.get(m) for m in dict.fromkeys((metric, *HEADLINE_METRICS))},
            "num_params": _first({**tags, **params, **metrics}, SIZE_KEYS),
            "latency_ms": _first({**tags, **params, **metrics}, LATENCY_KEYS),
            "duration_s": (end - r.info.start_time) / 1000.0 if end else None,
        }
        for key, value in _parse_overrides(row["overrides"]).items():
            if key not in row or key in override_keys:
                row[key] = value
                override_keys[key] = None
        rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    # Overrides shared by every job (tiny limits, an experiment preset) say nothing about the comparison.
    varying = [k for k in override_keys if df[k].nunique(dropna=False) > 1]
    df = df.drop(columns=[k for k in override_keys if k not in varying])
    df.attrs["override_columns"] = varying
    df[metric] = pd.to_numeric(df[metric], errors="coerce")
    sort = ["job", "run_name"] if df["job"].notna().any() else ["run_name"]
    out = df.sort_values(sort, na_position="last").reset_index(drop=True)
    out.attrs["override_columns"] = varying
    return out


def summary_table(df: pd.DataFrame, metric: str = DEFAULT_METRIC) -> pd.DataFrame:
    """Best `metric` per backbone (rows) x loss (columns)."""
    data = df.assign(model=df["model"].fillna("?"), loss=df["loss"].fillna("?"))
    return data.pivot_table(index="model", columns="loss", values=metric, aggfunc="max", dropna=False)


def to_markdown(df: pd.DataFrame, index: bool = False, floatfmt: str = "{:.4f}") -> str:
    """A GitHub table without extra dependencies (pandas.to_markdown needs tabulate)."""
    frame = df.reset_index() if index else df

    def cell(v) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return ""
        if isinstance(v, float | np.floating):
            return floatfmt.format(v)
        return str(v).replace("|", "\\|")

    head = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def plot_heatmap(table: pd.DataFrame, metric: str, out_path: str | Path):
    from ferops.evaluation.plots import new_figure, save_figure

    values = table.to_numpy(dtype=float)
    fig = new_figure((2.4 + 1.3 * max(1, table.shape[1]), 2.0 + 0.6 * max(1, table.shape[0])))
    ax = fig.add_subplot(1, 1, 1)
    masked = np.ma.masked_invalid(values)
    cmap = __import__("matplotlib").colormaps["viridis"].with_extremes(bad="#dddddd")
    finite = values[np.isfinite(values)]
    vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    im = ax.imshow(masked, cmap=cmap, vmin=vmin, vmax=vmax if vmax > vmin else vmin + 1e-6, aspect="auto")
    ax.set_xticks(range(table.shape[1]), [str(c) for c in table.columns], rotation=30, ha="right")
    ax.set_yticks(range(table.shape[0]), [str(i) for i in table.index])
    ax.set_xlabel("loss")
    ax.set_ylabel("backbone")
    for (i, j), v in np.ndenumerate(values):
        if np.isfinite(v):
            light = (v - vmin) / (vmax - vmin + 1e-12) < 0.5
            ax.text(j, i, f"{v:.3f}", ha="center", va="center", color="white" if light else "black", fontsize=9)
    fig.colorbar(im, ax=ax, label=metric)
    ax.set_title(f"best {metric} per backbone x loss", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, out_path)


def plot_tradeoff(df: pd.DataFrame, metric: str, out_path: str | Path):
    """Metric vs parameter count and/or latency: one panel per axis that children logged."""
    from ferops.evaluation.plots import new_figure, save_figure

    axes = [c for c in ("num_params", "latency_ms") if c in df and df[c].notna().any()]
    fig = new_figure((4.8 * len(axes), 3.8))
    for k, col in enumerate(axes, start=1):
        ax = fig.add_subplot(1, len(axes), k)
        data = df[df[col].notna() & df[metric].notna()]
        for loss, group in data.groupby(data["loss"].fillna("?")):
            ax.scatter(group[col], group[metric], label=str(loss), s=36)
            for _, row in group.iterrows():
                ax.annotate(str(row["model"]), (row[col], row[metric]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        if len(data) and (data[col] > 0).all() and data[col].max() > 10 * data[col].min():
            ax.set_xscale("log")  # backbones span orders of magnitude
        else:
            ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 4))
        ax.set_xlabel("parameters" if col == "num_params" else "latency (ms)")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, title="loss", title_fontsize=7)
    fig.suptitle(f"{metric} vs model cost", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, out_path)


def sweep_report(
    parent_run_id: str,
    out_dir: str | Path,
    metric: str = DEFAULT_METRIC,
    log_to_parent: bool = True,
    tracking_uri: str | None = None,
) -> tuple[pd.DataFrame, dict[str, Path]]:
    """Comparison table and plots of the parent's children, written to `out_dir` and logged to the parent."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = child_runs(parent_run_id, tracking_uri)
    if not runs:
        raise LookupError(f"run {parent_run_id} has no child runs (tag mlflow.parentRunId)")
    df = runs_frame(runs, metric)
    paths: dict[str, Path] = {}
    df.to_csv(out_dir / "runs.csv", index=False)
    paths["runs_csv"] = out_dir / "runs.csv"
    table_cols = [c for c in df.columns if c not in ("run_id", "overrides") and not df[c].isna().all()]
    (out_dir / "runs.md").write_text(to_markdown(df[table_cols]))
    paths["runs_md"] = out_dir / "runs.md"

    scored = df[df[metric].notna()]
    if scored.empty:
        log.warning("sweep %s: no child has %s; no summary table", parent_run_id, metric)
    else:
        table = summary_table(scored, metric)
        table.to_csv(out_dir / "summary.csv")
        (out_dir / "summary.md").write_text(f"best `{metric}` per backbone x loss\n\n" + to_markdown(table, index=True))
        paths["summary_csv"], paths["summary_md"] = out_dir / "summary.csv", out_dir / "summary.md"
        paths["heatmap"] = plot_heatmap(table, metric, out_dir / "heatmap.png")
        if any(c in scored and scored[c].notna().any() for c in ("num_params", "latency_ms")):
            paths["tradeoff"] = plot_tradeoff(scored, metric, out_dir / "tradeoff.png")

    if log_to_parent:
        client = tracking.client(tracking_uri)
        for path in paths.values():
            client.log_artifact(parent_run_id, str(path), artifact_path=ARTIFACT_PATH)
        tags = {"sweep.n_runs": str(len(df)), "sweep.n_finished": str(int((df["status"] == "FINISHED").sum()))}
        if not scored.empty:
            best = scored.loc[scored[metric].idxmax()]
            client.log_metric(parent_run_id, f"best/{metric}", float(best[metric]))
            tags.update(
                {
                    "sweep.best_run_id": best["run_id"],
                    "sweep.best_model": str(best["model"]),
                    "sweep.best_loss": str(best["loss"]),
                }
            )
        for key, value in tags.items():
            client.set_tag(parent_run_id, key, value)
    return df, paths
