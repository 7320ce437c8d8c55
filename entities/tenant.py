"""`tenant` entity (one per tenant): quota, API key hash, usage, task outcome counts and the job index.

Operations delegate to the pure functions in `acibatch.accounts`; this module only maps operation names. The
state (it grows with the job index) is stored as text through `acibatch.entitystate`.
"""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df

from acibatch import accounts
from acibatch import durable_names as names
from acibatch.durable_names import TenantOp
from acibatch.entitystate import KeptState
from acibatch.messages.tenant import JobRegistration, JobUpdate, TaskFinished, TenantConfig, UsageRecord
from entities import bp

STORED = KeptState(accounts.TenantState.from_dict, accounts.TenantState.to_dict)


def apply(state: accounts.TenantState, operation: str, data: Any) -> accounts.TenantState:
    if operation == TenantOp.CONFIGURE:
        config = TenantConfig.parse(data)
        return accounts.configure_tenant(state, config.quota, config.api_key_hash)
    if operation == TenantOp.RECORD_USAGE:
        usage = UsageRecord.parse(data)
        return accounts.record_usage(state, usage.lease_id, usage.cores, usage.memory_gb, usage.seconds)
    if operation == TenantOp.TASK_FINISHED:
        return accounts.count_task(state, str(TaskFinished.parse(data).outcome))
    if operation == TenantOp.REGISTER_JOB:
        job = JobRegistration.parse(data)
        return accounts.register_job(state, job.job_id, job.created_at, job.fingerprint)
    if operation == TenantOp.UPDATE_JOB:
        update = JobUpdate.parse(data)
        return accounts.update_job(state, update.job_id, update.state, update.finished_at)
    raise ValueError(f"tenant entity has no operation '{operation}'")


@bp.entity_trigger(context_name="context", entity_name=names.TENANT_ENTITY)
def tenant(context: df.DurableEntityContext) -> None:
    state = apply(STORED.load(context), context.operation_name, context.get_input())
    STORED.store(context, state)
