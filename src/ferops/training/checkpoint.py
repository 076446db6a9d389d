"""Moved to `ferops.models.checkpoint` (loading a checkpoint into a deployable module is model code,
not training). This shim keeps the old import path (docs, scripts, callers) working."""

from ferops.models.checkpoint import (
    ALLOWED_TARGET_PREFIXES,
    SAFE_GLOBALS,
    DeployableModel,
    UnsafeCheckpointError,
    load_deployable,
)

__all__ = ["ALLOWED_TARGET_PREFIXES", "SAFE_GLOBALS", "DeployableModel", "UnsafeCheckpointError", "load_deployable"]
