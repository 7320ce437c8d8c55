"""Activity functions: thin, idempotent ACI operations, storage reads and notifications."""

import azure.durable_functions as df

bp = df.Blueprint()

from activities import aci, files, notify, schedule, signals, sweep  # noqa: E402  (each registers functions on bp)

__all__ = ["aci", "bp", "files", "notify", "schedule", "signals", "sweep"]
