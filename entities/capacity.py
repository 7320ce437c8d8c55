"""`capacity` entity (one, key `region`): the single source of truth for who may run a container group now.

It holds the regional ACI limits (from settings), every tenant's quota, the running leases, the fair queue and
the create slots; operations delegate to `acibatch.tenancy` and answer the calling orchestration with the
messages of `acibatch.messages.capacity`. The state is stored as text through `acibatch.entitystate` (every
task's lease passes through here).
"""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df

from acibatch import durable_names as names
from acibatch import tenancy
from acibatch.durable_names import CapacityOp
from acibatch.entitystate import KeptState
from acibatch.messages import capacity as messages
from acibatch.settings import current as settings
from entities import bp

STORED = KeptState[tenancy.CapacityState | None](
    lambda data: tenancy.CapacityState.from_dict(data) if data else None,
    lambda state: None if state is None else state.stored_json(),
)


def apply(state: tenancy.CapacityState, operation: str, data: Any) -> tuple[tenancy.CapacityState, Any]:
    if operation == CapacityOp.ACQUIRE:
        state, acquired = tenancy.acquire(state, messages.LeaseAsk.parse(data))
        return state, acquired.to_dict()
    if operation == CapacityOp.RELEASE:
        release = messages.ReleaseAsk.parse(data)
        state, released = tenancy.release(state, release.lease_id, release.now)
        return state, messages.ReleaseAnswer.of(released.granted, released.released).to_dict()
    if operation == CapacityOp.RESERVE_CREATE:
        create = messages.CreateSlotAsk.parse(data)
        state, slot = tenancy.reserve_create(state, create.lease_id, create.now, create.not_before, create.throttled)
        return state, messages.CreateSlotAnswer(slot).to_dict()
    if operation == CapacityOp.RESERVE_DELETE:
        delete = messages.DeleteSlotAsk.parse(data)
        state, delete_at = tenancy.reserve_delete(state, delete.now, delete.not_before, delete.throttled)
        return state, messages.DeleteSlotAnswer(delete_at).to_dict()
    if operation == CapacityOp.SET_QUOTA:
        change = messages.QuotaChange.parse(data)
        state, granted = tenancy.set_tenant_quota(state, change.tenant, change.quota)
        return state, messages.QuotaAnswer(tuple(granted)).to_dict()
    raise ValueError(f"capacity entity has no operation '{operation}'")


@bp.entity_trigger(context_name="context", entity_name=names.CAPACITY_ENTITY)
def capacity(context: df.DurableEntityContext) -> None:
    config = settings()
    limits = tenancy.RegionLimits(
        config.max_groups, config.max_cores, config.max_spot_cores, config.create_limits, config.delete_limits
    )
    state = STORED.load(context) or tenancy.CapacityState.empty(config.max_groups, config.max_cores)
    state = tenancy.set_region_limits(state, limits)
    state, result = apply(state, context.operation_name, context.get_input())
    STORED.store(context, state)
    context.set_result(result)
