"""`capacity` entity (one, key `region`): the single source of truth for who may run a container group now.

It holds the regional ACI limits (from settings), every tenant's quota, the running leases and the fair
queue; operations delegate to `acibatch.tenancy` and return JSON results to the calling orchestration.
"""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df

from acibatch import durable_names as names
from acibatch import tenancy
from acibatch.settings import current as settings
from entities import bp


def apply(state: tenancy.CapacityState, operation: str, data: Any) -> tuple[tenancy.CapacityState, Any]:
    if operation == "acquire":
        state, acquired = tenancy.acquire(state, tenancy.LeaseRequest.from_dict(data))
        return state, acquired.to_dict()
    if operation == "release":
        state, released = tenancy.release(state, data["leaseId"], float(data.get("now", 0)))
        return state, released.to_dict()
    if operation == "set_quota":
        state, granted = tenancy.set_tenant_quota(state, data["tenant"], tenancy.Quota.from_dict(data["quota"]))
        return state, {"granted": [lease.to_dict() for lease in granted]}
    raise ValueError(f"capacity entity has no operation '{operation}'")


class _LastState:
    """The state this function stored last, with the dict it stored, so the next operation can skip parsing.

    The SDK runs a batch of operations one call each and hands every call the very object the previous one
    stored; only the first call of a batch gets freshly decoded JSON. With a thousand queued leases, parsing
    the state on every operation was most of the entity's cost.
    """

    pair: tuple[Any, tenancy.CapacityState] | None = None  # (stored dict, its state), replaced as one

    @classmethod
    def load(cls, stored: Any, max_groups: int, max_cores: float) -> tenancy.CapacityState:
        pair = cls.pair
        if pair is not None and stored is pair[0]:
            return pair[1]
        if stored:
            return tenancy.CapacityState.from_dict(stored)
        return tenancy.CapacityState.empty(max_groups=max_groups, max_cores=max_cores)

    @classmethod
    def keep(cls, stored: Any, state: tenancy.CapacityState) -> None:
        cls.pair = (stored, state)


@bp.entity_trigger(context_name="context", entity_name=names.CAPACITY_ENTITY)
def capacity(context: df.DurableEntityContext) -> None:
    config = settings()
    state = _LastState.load(context.get_state(lambda: None), config.max_groups, config.max_cores)
    state = tenancy.set_region_limits(state, config.max_groups, config.max_cores)
    state, result = apply(state, context.operation_name, context.get_input())
    stored = state.to_dict()
    context.set_state(stored)
    _LastState.keep(stored, state)
    context.set_result(result)
