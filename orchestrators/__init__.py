"""Orchestrator functions: the job fan-out and one task's container-group life."""

import azure.durable_functions as df

bp = df.Blueprint()

__all__ = ["bp"]
