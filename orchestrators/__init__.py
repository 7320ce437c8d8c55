"""Orchestrator functions: the job fan-out, one task's container-group life, and reclaiming leaked leases."""

import azure.durable_functions as df

from orchestrators import episodecost, timestamps

bp = df.Blueprint()
# Every episode replays the whole history: parse each stored event's timestamp once per worker, not per episode.
timestamps.install()
# And build the SDK's executor without compiling a class each time (`episodecost`).
episodecost.install()

from orchestrators import job, reclaim, schedule, task  # noqa: E402  (each registers functions on bp)

__all__ = ["bp", "job", "reclaim", "schedule", "task"]
