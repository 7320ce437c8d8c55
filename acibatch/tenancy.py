"""Shared capacity with a weighted fair queue: who may run a container group now, and when it may be created.

`CapacityState` is held by one Durable entity and is the single source of truth for scheduling: the
regional ACI limits (groups, Regular and Spot cores counted apart, the create rate), each tenant's quota, the
running leases and a FIFO queue per tenant.
Every change runs one granting rule (`_dispatch`): while some tenant's oldest waiting request fits both its
own quota and the region, grant the request of the tenant with the lowest share, where a tenant's share is
its running cores divided by its weight (ties: the older request). A tenant with weight 2 therefore gets
about twice the cores of a tenant with weight 1 when both are waiting, and a tenant with little running is
served before a tenant with a long queue. New requests go through the same rule, so a newcomer never jumps
a queue. A head that does not fit right now is skipped, so one large request does not block small ones.
Within a tenant, a request of a job with a higher `jobPriority` goes before lower ones (FIFO among equals):
a tenant's queue is kept in that order, so its head is still its first row, and the cross-tenant fair share
is untouched (priority never moves one tenant's request ahead of another tenant's).
Each granted lease gets a create slot (`acibatch.armrate`), so a burst of grants never breaks ACI's create rate.
Per-tenant accounting is `acibatch.accounts`. All functions are pure: they return new state and never read a
clock (callers pass `now`).

The state and its parts live in `acibatch.capacity_state`, `acibatch.fairqueue` and `acibatch.leases`; the
entity's messages in `acibatch.messages.capacity`. The names tests and callers import from here are re-exported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from acibatch.armrate import WriteAdmission
from acibatch.capacity_state import EPSILON, CapacityState, RegionLimits
from acibatch.fairqueue import RequestQueue
from acibatch.leases import Lease, LeaseRequest, Quota
from acibatch.messages.capacity import AcquireAnswer, Grant, ReleaseAnswer

# Earlier names of the entity's `acquire` answer (tests and the bench build expected answers with them).
AcquireStatus = Grant
AcquireResult = AcquireAnswer

__all__ = [
    "AcquireResult",
    "AcquireStatus",
    "CapacityState",
    "Lease",
    "LeaseRequest",
    "Quota",
    "RegionLimits",
    "ReleaseResult",
    "acquire",
    "release",
    "reserve_create",
    "reserve_delete",
    "set_region_limits",
    "set_tenant_quota",
    "snapshot",
]


@dataclass(frozen=True)
class ReleaseResult:
    """What a release did: the leases it granted, in order, and the lease it ended (None: it withdrew a queued
    request, or there was none). The entity answers with `ReleaseAnswer.of(...)` of it."""

    granted: list[Lease]
    released: Lease | None

    def to_dict(self) -> dict[str, Any]:
        return ReleaseAnswer.of(self.granted, self.released).to_dict()


def _never_fits(state: CapacityState, request: LeaseRequest) -> str | None:
    quota = state.quotas.get(request.tenant)
    if quota is None:
        return f"tenant '{request.tenant}' has no quota; create it with PUT /api/tenants/{request.tenant}"
    if request.cores > quota.max_cores + EPSILON or request.memory_gb > quota.max_memory_gb + EPSILON:
        return (
            f"a task needs {request.cores:g} cores / {request.memory_gb:g} GB "
            f"but tenant '{request.tenant}' may use "
            f"at most {quota.max_cores:g} cores / {quota.max_memory_gb:g} GB"
        )
    if request.spot and request.cores > state.max_spot_cores + EPSILON:
        return f"a task needs {request.cores:g} Spot cores but the region allows {state.max_spot_cores:g}"
    if not request.spot and request.cores > state.max_cores + EPSILON:
        return f"a task needs {request.cores:g} cores but the region allows {state.max_cores:g}"
    return None


def _dispatch(state: CapacityState, now: float) -> list[Lease]:
    """Grant waiting heads in fair order while any fits (see the module docstring), each with a create slot.
    Mutates `state`."""
    granted: list[Lease] = []
    while True:
        best: tuple[float, float, str, str] | None = None
        for tenant, queue in state.queues.items():
            for head in queue.heads():
                if not state.fits_now(head):
                    continue
                share = state.tenant_usage(tenant)[1] / max(state.quotas[tenant].weight, EPSILON)
                candidate = (share, head.requested_at, tenant, head.lease_id)
                if best is None or candidate < best:
                    best = candidate
        if best is None:
            return granted
        queue = state.queues[best[2]]
        request = queue.find(best[3])
        assert request is not None
        queue.remove(best[3])
        lease = Lease(request, now, state.creates.reserve(now))
        state.running[request.lease_id] = lease
        granted.append(lease)


def acquire(state: CapacityState, request: LeaseRequest) -> tuple[CapacityState, AcquireAnswer]:
    """Ask for a lease; idempotent by lease id (a granted lease stays GRANTED, a queued one QUEUED)."""
    if request.lease_id in state.running:
        return state, AcquireAnswer(Grant.GRANTED, create_at=state.running[request.lease_id].create_at)
    if state.queued(request.lease_id) is not None:
        return state, _queued(state, request)
    reason = _never_fits(state, request)
    if reason is not None:
        return state, AcquireAnswer(Grant.REJECTED, reason)
    new = state.clone()
    new.queues.setdefault(request.tenant, RequestQueue(request.tenant)).append(request)
    _dispatch(new, request.requested_at)
    lease = new.running.get(request.lease_id)
    if lease is not None:
        return new, AcquireAnswer(Grant.GRANTED, create_at=lease.create_at)
    return new, _queued(new, request)


def _queued(state: CapacityState, request: LeaseRequest) -> AcquireAnswer:
    """A QUEUED answer: what the request waits for, and how many turns of the tenant's leases are ahead of it."""
    queue = state.queues.get(request.tenant)
    ahead = queue.position(request.lease_id) if queue else 0
    rounds = ahead // _at_once(state, request) + 1
    blocked = state.blocked_by(request)
    if blocked is not None:
        return AcquireAnswer(Grant.QUEUED, blocked, rounds=rounds)
    return AcquireAnswer(Grant.QUEUED, f"fair queue: {ahead} earlier request(s) of this tenant first", rounds=rounds)


def _at_once(state: CapacityState, request: LeaseRequest) -> int:
    """How many requests of this size the tenant could run at once, within its quota and the region's limits (at
    least 1). With other tenants running it gets fewer, so turns counted with it are a lower bound."""
    quota = state.quotas.get(request.tenant)
    if quota is None:
        return 1
    region_cores = state.max_spot_cores if request.spot else state.max_cores
    bounds = [quota.max_groups, state.max_groups]
    if request.cores > EPSILON:
        bounds += [int((quota.max_cores + EPSILON) // request.cores), int((region_cores + EPSILON) // request.cores)]
    if request.memory_gb > EPSILON:
        bounds.append(int((quota.max_memory_gb + EPSILON) // request.memory_gb))
    return max(1, min(bounds))


def release(state: CapacityState, lease_id: str, now: float) -> tuple[CapacityState, ReleaseResult]:
    """End a lease (or withdraw a queued request); reports the leases this granted, in order."""
    new = state.clone()
    released = new.running.pop(lease_id, None)
    if released is None:
        for queue in new.queues.values():
            queue.remove(lease_id)
    granted = _dispatch(new, now)
    return new, ReleaseResult(granted, released)


def reserve_create(
    state: CapacityState, lease_id: str, now: float, not_before: float = 0.0, throttled: bool = False
) -> tuple[CapacityState, float | None]:
    """A new create slot, not before `not_before`, for a granted lease whose create must be sent again (None: no
    such lease). `throttled` means ARM answered 429 with Retry-After up to `not_before`: no create of the
    subscription is sent before then, so every later slot moves past it too."""
    lease = state.running.get(lease_id)
    if lease is None:
        return state, None
    new = state.clone()
    slot = new.creates.reserve(now, not_before, throttled)
    new.running[lease_id] = Lease(lease.request, lease.started_at, slot)
    return new, slot


def reserve_delete(
    state: CapacityState, now: float, not_before: float = 0.0, throttled: bool = False
) -> tuple[CapacityState, float]:
    """The instant a task may delete its group, within ACI's delete windows (the task keeps its lease until the
    group is gone). `throttled`: ARM refused a delete with Retry-After up to `not_before`."""
    new = state.clone()
    return new, new.deletes.reserve(now, not_before, throttled)


def set_tenant_quota(
    state: CapacityState, tenant: str, quota: Quota, now: float = 0.0
) -> tuple[CapacityState, list[Lease]]:
    """Set a tenant's quota; raising it may grant waiting requests (returned)."""
    new = state.clone()
    new.quotas[tenant] = quota
    return new, _dispatch(new, now)


def set_region_limits(state: CapacityState, limits: RegionLimits) -> CapacityState:
    if state.limits == limits:
        return state
    new = state.clone()
    new.max_groups, new.max_cores, new.max_spot_cores = limits.max_groups, limits.max_cores, limits.max_spot_cores
    new.creates = WriteAdmission(limits.create_limits, new.creates.slots, new.creates.throttled_until)
    new.deletes = WriteAdmission(limits.delete_limits, new.deletes.slots, new.deletes.throttled_until)
    return new


def snapshot(state: CapacityState, tenant: str) -> dict[str, Any]:
    groups, cores, memory = state.tenant_usage(tenant)
    return {
        "running_groups": groups,
        "running_cores": round(cores, 3),
        "running_memory_gb": round(memory, 3),
        "queued": len(state.queues.get(tenant, [])),
    }
