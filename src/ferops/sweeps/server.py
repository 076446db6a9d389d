"""Moved to `ferops.tracking.server` (server processes are general MLflow plumbing, not sweeps);
this old path stays importable for docs, notebooks and scripts that name it."""

from ferops.tracking.server import free_port, server_command, tracking_server, wait_until_up

__all__ = ["free_port", "server_command", "tracking_server", "wait_until_up"]
