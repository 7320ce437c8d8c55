"""`tenant` entity (one per tenant): quota, API key hash, usage, task outcome counts and the job index.

Operations delegate to the pure functions in `acibatch.accounts`; this module only maps operation names. The
state (it grows with the job index) is stored as text through `acibatch.entitystate`.
"""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df

from acibatch import accounts, tenancy
from acibatch import durable_names as names
from acibatch.entitystate import KeptState
from entities import bp

STORED = KeptState(accounts.TenantState.from_dict, accounts.TenantState.to_dict)


def apply(state: accounts.TenantState, operation: str, data: Any) -> accounts.TenantState:
    if operation == "configure":
        quota = tenancy.Quota.from_dict(data["quota"])
        return accounts.configure_tenant(state, quota, data.get("apiKeyHash"))
    if operation == "record_usage":
        return accounts.record_usage(
            state, data["leaseId"], float(data["cores"]), float(data["memoryGb"]), float(data["seconds"])
        )
    if operation == "task_finished":
        return accounts.count_task(state, data["outcome"])
    if operation == "register_job":
        return accounts.register_job(state, data["jobId"], data["createdAt"], data.get("fingerprint", ""))
    if operation == "update_job":
        return accounts.update_job(state, data["jobId"], data["state"], data.get("finishedAt"))
    raise ValueError(f"tenant entity has no operation '{operation}'")


@bp.entity_trigger(context_name="context", entity_name=names.TENANT_ENTITY)
def tenant(context: df.DurableEntityContext) -> None:
    state = apply(STORED.load(context), context.operation_name, context.get_input())
    STORED.store(context, state)
