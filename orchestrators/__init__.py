"""Orchestrator functions: the job fan-out and one task's container-group life."""

import azure.durable_functions as df

bp = df.Blueprint()

from orchestrators import job, task  # noqa: E402  (each registers functions on bp)

__all__ = ["bp", "job", "task"]
