"""`capacity` entity (one, key `region`): the single source of truth for who may run a container group now.

It holds the regional ACI limits (from settings), every tenant's quota, the running leases, the fair queue and
the create slots; operations delegate to `acibatch.tenancy` and return JSON results to the calling orchestration. The
state is stored as text through `acibatch.entitystate` (every task's lease passes through here).
"""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df

from acibatch import durable_names as names
from acibatch import tenancy
from acibatch.entitystate import KeptState
from acibatch.settings import current as settings
from entities import bp

STORED = KeptState[tenancy.CapacityState | None](
    lambda data: tenancy.CapacityState.from_dict(data) if data else None,
    lambda state: None if state is None else state.to_dict(),
)


def apply(state: tenancy.CapacityState, operation: str, data: Any) -> tuple[tenancy.CapacityState, Any]:
    if operation == "acquire":
        state, acquired = tenancy.acquire(state, tenancy.LeaseRequest.from_dict(data))
        return state, acquired.to_dict()
    if operation == "release":
        state, released = tenancy.release(state, data["leaseId"], float(data.get("now", 0)))
        return state, released.to_dict()
    if operation == "reserve_create":
        now = float(data["now"])
        state, slot = tenancy.reserve_create(
            state, data["leaseId"], now, float(data.get("notBefore", 0)), bool(data.get("throttled", False))
        )
        return state, {"createAt": slot}
    if operation == "reserve_delete":
        state, slot = tenancy.reserve_delete(
            state, float(data["now"]), float(data.get("notBefore", 0)), bool(data.get("throttled", False))
        )
        return state, {"deleteAt": slot}
    if operation == "set_quota":
        state, granted = tenancy.set_tenant_quota(state, data["tenant"], tenancy.Quota.from_dict(data["quota"]))
        return state, {"granted": [lease.to_dict() for lease in granted]}
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
