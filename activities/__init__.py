"""Activity functions: thin, idempotent ACI operations and notifications."""

import azure.durable_functions as df

bp = df.Blueprint()

from activities import aci, notify, schedule, signals, sweep  # noqa: E402  (each registers functions on bp)

__all__ = ["aci", "bp", "notify", "schedule", "signals", "sweep"]
