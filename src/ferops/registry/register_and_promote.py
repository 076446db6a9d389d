"""The DVC register stage's work, callable from Python: register the pipeline's export as a new
version (alias `challenger`) and, when configured, run the promotion right away."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ferops import tracking
from ferops.registry.config import RegistryConfig
from ferops.registry.promote import promote
from ferops.registry.register import aliases_of, register_pipeline_outputs, registry_client


def register_stage(
    cfg: RegistryConfig,
    run_id_file: str | Path,
    export_metrics: str | Path,
    bundle_dir: str | Path,
    onnx: str | Path | None,
    checkpoint: str | Path | None,
    predictions: str | Path | None = None,
) -> dict[str, Any]:
    """Returns what the stage writes to registered.json: name, version, aliases, run id, model URI,
    and the promotion decision (or None when `auto_promote` is off). The promotion compares the
    version registered here (not whatever `challenger` points at by then: a parallel stage may
    have registered another one since)."""
    version = register_pipeline_outputs(cfg.name, run_id_file, export_metrics, bundle_dir, onnx, checkpoint, predictions)
    decision = None
    if cfg.auto_promote:
        decision = promote(
            cfg.name,
            margin=cfg.margin,
            gates=cfg.gates,
            metric=cfg.metric,
            version=version,
            resamples=cfg.bootstrap_resamples,
            confidence=cfg.confidence,
        )
    client = registry_client()
    return {
        "name": cfg.name,
        "version": version,
        "aliases": aliases_of(cfg.name, version, client),
        "run_id": tracking.read_run_id(run_id_file),
        "model_uri": f"models:/{cfg.name}/{version}",
        "promotion": None if decision is None else {k: v for k, v in decision.to_dict().items() if k != "name"},
    }
