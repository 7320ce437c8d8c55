"""Activities that raise events to other orchestrations (Python orchestrators cannot do it themselves).

Both are best-effort and idempotent: an instance that is gone or finished (404/410) simply needs no event,
and a lost wake-up is healed by the waiter's own back-off timer.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

import azure.durable_functions as df

from acibatch import durable_names as names
from acibatch.entitystate import read_stored
from acibatch.messages.capacity import CapacityGranted
from acibatch.messages.jobs import JobRef
from acibatch.naming import task_instance_id
from acibatch.plan import progress_entity_key
from acibatch.records import JobProgress
from activities import bp

log = logging.getLogger(__name__)
RAISES_IN_PARALLEL = 16


async def raise_to_all(client: df.DurableOrchestrationClient, instances: list[str], event: str, data: Any) -> int:
    semaphore = asyncio.Semaphore(RAISES_IN_PARALLEL)

    async def one(instance: str) -> bool:
        async with semaphore:
            try:
                await client.raise_event(instance, event, data)
            except Exception as exc:  # 404/410: not started yet or already finished
                log.debug("no %s event for %s: %s", event, instance, exc)
                return False
            return True

    return sum(await asyncio.gather(*(one(instance) for instance in instances)))


def lease_owner(lease_id: str) -> str:
    """Leases are named `<task instance id>#<attempt>`."""
    return lease_id.rpartition("#")[0]


@bp.activity_trigger(input_name="payload", activity=names.WAKE_WAITERS)
@bp.durable_client_input(client_name="client")
async def wake_waiters(payload: object, client: df.DurableOrchestrationClient) -> int:
    """Tell each granted lease's task; a lease is its id, or the granted lease (with its create slot)."""
    granted = cast(list[Any], payload)  # typed `object` for the Python worker: see devhost/workerrules.py
    event = CapacityGranted.from_granted(granted)
    return await raise_to_all(
        client, [lease_owner(lease) for lease in event.leases], names.EVENT_CAPACITY_GRANTED, event.to_dict()
    )


@bp.activity_trigger(input_name="payload", activity=names.CANCEL_TASKS)
@bp.durable_client_input(client_name="client")
async def cancel_tasks(payload: object, client: df.DurableOrchestrationClient) -> int:
    """Raise `Cancel` to every task of the job that has begun and not finished."""
    job = JobRef.parse(cast(dict[str, Any], payload))  # typed `object` for the worker: see devhost/workerrules.py
    tenant, job_id = job.tenant, job.job_id
    entity = df.EntityId(names.PROGRESS_ENTITY, progress_entity_key(tenant, job_id))
    progress = JobProgress.from_dict(await read_stored(client, entity))
    live = [task for task in progress.states if not progress.task_state(task).terminal]
    return await raise_to_all(
        client,
        [task_instance_id(tenant, job_id, task) for task in live],
        names.EVENT_CANCEL,
        {"reason": "job"},
    )
