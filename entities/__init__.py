"""Durable entities: per-tenant and shared-capacity state over pure state machines."""

import azure.durable_functions as df

bp = df.Blueprint()

from entities import capacity, jobprogress, schedule, tenant  # noqa: E402  (each registers functions on bp)

__all__ = ["bp", "capacity", "jobprogress", "schedule", "tenant"]
