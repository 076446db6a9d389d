"""Model registry: the bundle as an MLflow pyfunc, registration, champion/challenger promotion, rollback.

Aliases, never stages: `challenger` (newest version), `champion` (served), `previous-champion` (rollback target).
"""

from ferops.registry.config import Gates, RegistryConfig, load_registry_config
from ferops.registry.evidence import Comparison, compare_versions, paired_bootstrap
from ferops.registry.lock import registry_lock
from ferops.registry.promote import Decision, check_gates, decide, promote, rollback, version_gate_failures
from ferops.registry.pyfunc import FERBundleModel, encode_images, log_pyfunc
from ferops.registry.register import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS_CHAMPION,
    register_model,
    register_pipeline_outputs,
    registry_client,
)
from ferops.registry.reports import format_table, model_versions, recent_runs

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "PREVIOUS_CHAMPION",
    "Comparison",
    "Decision",
    "FERBundleModel",
    "Gates",
    "RegistryConfig",
    "check_gates",
    "compare_versions",
    "decide",
    "encode_images",
    "format_table",
    "load_registry_config",
    "log_pyfunc",
    "model_versions",
    "paired_bootstrap",
    "promote",
    "recent_runs",
    "register_model",
    "register_pipeline_outputs",
    "registry_client",
    "registry_lock",
    "rollback",
    "version_gate_failures",
]
