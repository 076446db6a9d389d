"""Optuna study summary on the sweep's parent run.

The Hydra Optuna sweeper keeps its study in memory (storage: null) and writes only
`<sweep dir>/optimization_results.yaml` (best params and value). The trials table is therefore
built from MLflow: one child run per trial, tagged with its job number and overrides by the
sweep callback, so it also holds trials of a sweep resumed from a persistent Optuna storage.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from ferops import tracking
from ferops.sweeps.report import to_markdown

ARTIFACT_PATH = "optuna"


def trials_table(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Trial number (= Hydra job number), status, the sampled overrides and the objective, best first."""
    params = list(df.attrs.get("override_columns", []))
    cols = [c for c in dict.fromkeys(("job", "status", "run_name", "model", "loss", *params, metric)) if c in df.columns]
    table = df[cols].rename(columns={"job": "trial"})
    return table.sort_values(metric, ascending=False, na_position="last").reset_index(drop=True)


def write_study_summary(df: pd.DataFrame, results: dict, metric: str, out_dir: str | Path) -> dict[str, Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = trials_table(df, metric)
    table.to_csv(out_dir / "trials.csv", index=False)
    best = results.get("best_params") or {}
    lines = [
        "# Optuna study",
        "",
        f"- objective: `{metric}` (maximize), best value: **{results.get('best_value')}**",
        f"- trials: {len(table)} ({int((table['status'] == 'FINISHED').sum()) if 'status' in table else '?'} finished)",
        "",
        "## Best parameters",
        "",
        *[f"- `{k}`: {v}" for k, v in best.items()],
        "",
        "## Trials",
        "",
        to_markdown(table),
    ]
    (out_dir / "study_summary.md").write_text("\n".join(lines))
    return {"trials_csv": out_dir / "trials.csv", "study_summary": out_dir / "study_summary.md"}


def log_study_summary(
    parent_run_id: str, df: pd.DataFrame, sweep_dir: str | Path, metric: str, tracking_uri: str | None = None
) -> dict[str, Path]:
    """Read optimization_results.yaml, write the summary, log it, best params and value to the parent."""
    results = yaml.safe_load((Path(sweep_dir) / "optimization_results.yaml").read_text()) or {}
    paths = write_study_summary(df, results, metric, Path(sweep_dir) / "optuna")
    client = tracking.client(tracking_uri)
    for path in paths.values():
        client.log_artifact(parent_run_id, str(path), artifact_path=ARTIFACT_PATH)
    tracking.log_params_flat({"best": results.get("best_params") or {}}, run_id=parent_run_id, uri=tracking_uri)
    if results.get("best_value") is not None:
        client.log_metric(parent_run_id, "optuna/best_value", float(results["best_value"]))
    return paths
