"""Activity functions: thin, idempotent ACI operations and notifications."""

import azure.durable_functions as df

bp = df.Blueprint()

__all__ = ["bp"]
