"""Durable entities: per-tenant and shared-capacity state over pure state machines."""

import azure.durable_functions as df

bp = df.Blueprint()

__all__ = ["bp"]
