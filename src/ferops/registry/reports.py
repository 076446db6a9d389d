"""Tables for people: recent runs with their key metrics, registered versions with aliases and tags."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from mlflow import MlflowClient

from ferops.registry import tags as T
from ferops.registry.register import registry_client

RUN_COLUMNS = ("run", "status", "start", "val/macro_f1", "test/acc", "test/macro_f1", "int8/acc")
VERSION_COLUMNS = (
    "version",
    "aliases",
    "created",
    "run",
    T.INT8_MACRO_F1,
    T.INT8_ACC,
    T.EDGETPU_COMPATIBLE,
    T.LATENCY_MS,
    "data",
    T.PROMOTION_DECISION,
)


def _time(ms: int | None) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M") if ms else ""


def _num(value: Any) -> str:
    try:
        return f"{float(value):.4f}"
    except (TypeError, ValueError):
        return ""


def recent_runs(experiment: str, n: int = 10, client: MlflowClient | None = None) -> list[dict[str, str]]:
    """The `n` newest runs of `experiment` (newest first) with their headline metrics."""
    client = client or registry_client()
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise LookupError(f"no experiment named {experiment!r} in the store")
    runs = client.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"], max_results=n)
    rows = []
    for run in runs:
        m = run.data.metrics
        rows.append(
            {
                "run": run.info.run_name or run.info.run_id,
                "status": run.info.status,
                "start": _time(run.info.start_time),
                "val/macro_f1": _num(m.get("val/macro_f1")),
                "test/acc": _num(m.get("test/acc")),
                "test/macro_f1": _num(m.get("test/macro_f1")),
                "int8/acc": _num(m.get(T.RUN_INT8_ACC)),
            }
        )
    return rows


def model_versions(name: str, client: MlflowClient | None = None) -> list[dict[str, str]]:
    """Every version of registered model `name` (newest first): aliases and key metric tags."""
    client = client or registry_client()
    versions = client.search_model_versions(f"name = '{name}'")
    if not versions:
        return []
    # search results leave ModelVersion.aliases empty: take them from the registered model
    by_version: dict[str, list[str]] = {}
    for alias, version in client.get_registered_model(name).aliases.items():
        by_version.setdefault(str(version), []).append(alias)
    rows = []
    for mv in sorted(versions, key=lambda v: int(v.version), reverse=True):
        tags = dict(mv.tags)
        rows.append(
            {
                "version": str(mv.version),
                "aliases": ",".join(sorted(by_version.get(str(mv.version), []))),
                "created": _time(mv.creation_timestamp),
                "run": tags.get(T.RUN_NAME, mv.run_id or ""),
                T.INT8_MACRO_F1: _num(tags.get(T.INT8_MACRO_F1)),
                T.INT8_ACC: _num(tags.get(T.INT8_ACC)),
                T.EDGETPU_COMPATIBLE: tags.get(T.EDGETPU_COMPATIBLE, ""),
                T.LATENCY_MS: _num(tags.get(T.LATENCY_MS)),
                "data": tags.get(T.DATA_FINGERPRINT, "")[:12],
                T.PROMOTION_DECISION: tags.get(T.PROMOTION_DECISION, ""),
            }
        )
    return rows


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """Fixed-width text table; empty cells print as '-'."""
    cells = [[str(r.get(c, "")) or "-" for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*columns), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*row) for row in cells]
    return "\n".join(line.rstrip() for line in lines)
