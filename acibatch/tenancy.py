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
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Any

from acibatch import armrate
from acibatch.armrate import WindowLimit, WriteAdmission

EPSILON = 1e-9


@dataclass(frozen=True)
class Quota:
    max_groups: int
    max_cores: float
    max_memory_gb: float
    weight: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "maxGroups": self.max_groups,
            "maxCores": self.max_cores,
            "maxMemoryGb": self.max_memory_gb,
            "weight": self.weight,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Quota:
        return cls(int(data["maxGroups"]), float(data["maxCores"]), float(data["maxMemoryGb"]), float(data["weight"]))


@dataclass(frozen=True)
class LeaseRequest:
    lease_id: str
    tenant: str
    cores: float
    memory_gb: float
    requested_at: float
    spot: bool = False  # Spot cores are limited apart from Regular ones
    priority: int = 0  # the job's jobPriority: orders the tenant's own queue (higher first)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.stored_form)

    @cached_property
    def stored_form(self) -> dict[str, Any]:
        """`to_dict()` built once (the request never changes); shared, so read it, never change it."""
        form = {
            "leaseId": self.lease_id,
            "tenant": self.tenant,
            "cores": self.cores,
            "memoryGb": self.memory_gb,
            "requestedAt": self.requested_at,
        }
        if self.spot:
            form["spot"] = True
        if self.priority:
            form["priority"] = self.priority
        return form

    @cached_property
    def queue_row(self) -> list[Any]:
        """The compact stored form in a tenant's queue (the tenant is the queue's key): a thousand waiting
        requests are decoded and re-encoded on every batch of the capacity entity, so each is kept small, and
        whole numbers where they can be (encoding a float costs JSON several times an int): cores and memory
        as ints when whole, the request time in milliseconds, a fifth element (1: Spot) only for Spot or a
        non-zero priority, and a sixth (the priority) only for a non-zero priority."""
        cores, memory_gb = _whole_if_whole(self.cores), _whole_if_whole(self.memory_gb)
        row = [self.lease_id, cores, memory_gb, round(self.requested_at * 1000)]
        if self.priority:
            return [*row, int(self.spot), self.priority]
        return [*row, 1] if self.spot else row

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LeaseRequest:
        return cls(
            str(data["leaseId"]),
            str(data["tenant"]),
            float(data["cores"]),
            float(data["memoryGb"]),
            float(data["requestedAt"]),
            bool(data.get("spot", False)),
            int(data.get("priority", 0)),
        )

    @classmethod
    def from_queue_row(cls, tenant: str, row: list[Any]) -> LeaseRequest:
        lease_id, cores, memory_gb, requested_ms = row[:4]
        return cls(
            str(lease_id),
            tenant,
            float(cores),
            float(memory_gb),
            requested_ms / 1000,
            _row_spot(row),
            _row_priority(row),
        )


def _row_spot(row: list[Any]) -> bool:
    return len(row) > 4 and bool(row[4])


def _row_priority(row: list[Any]) -> int:
    return int(row[5]) if len(row) > 5 else 0


def _whole_if_whole(value: float) -> float | int:
    return int(value) if float(value).is_integer() else float(value)


@dataclass(frozen=True)
class Lease:
    request: LeaseRequest
    started_at: float
    create_at: float = 0.0  # the create slot reserved for it (`acibatch.armrate`): not before this instant

    @property
    def lease_id(self) -> str:
        return self.request.lease_id

    @property
    def tenant(self) -> str:
        return self.request.tenant

    def to_dict(self) -> dict[str, Any]:
        return dict(self.stored_form)

    @cached_property
    def stored_form(self) -> dict[str, Any]:
        """`to_dict()` built once (the lease never changes); shared, so read it, never change it."""
        return {**self.request.stored_form, "startedAt": self.started_at, "createAt": self.create_at}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Lease:
        return cls(LeaseRequest.from_dict(data), float(data["startedAt"]), float(data.get("createAt", 0.0)))


class AcquireStatus(StrEnum):
    GRANTED = "GRANTED"
    QUEUED = "QUEUED"
    REJECTED = "REJECTED"


@dataclass(frozen=True)
class AcquireResult:
    status: AcquireStatus
    reason: str | None = None  # REJECTED: why never; QUEUED: what it waits for
    create_at: float | None = None  # GRANTED: the create slot reserved for the lease

    def to_dict(self) -> dict[str, Any]:
        return {"status": str(self.status), "reason": self.reason, "createAt": self.create_at}


@dataclass(frozen=True)
class ReleaseResult:
    granted: list[Lease]
    released: Lease | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "granted": [lease.to_dict() for lease in self.granted],
            "released": None if self.released is None else self.released.to_dict(),
        }


@dataclass
class RequestQueue:
    """One tenant's waiting requests, oldest first, kept as their compact stored rows.

    The capacity entity loads its whole state for every batch of operations, and with a thousand waiting
    requests building an object per row was most of a batch's cost. Only the head is ever looked at, so rows
    become `LeaseRequest`s when read. A state's `clone` copies the row list, so a stored state's is never changed.
    """

    tenant: str
    rows: list[list[Any]] = field(default_factory=list)

    @classmethod
    def from_legacy(cls, tenant: str, rows: list[Any]) -> RequestQueue:
        """A queue stored under `queues` by earlier versions: dicts, or rows with the time in seconds."""
        requests = (
            LeaseRequest.from_dict(row)
            if isinstance(row, Mapping)
            else LeaseRequest(str(row[0]), tenant, float(row[1]), float(row[2]), float(row[3]))
            for row in rows
        )
        return cls(tenant, [request.queue_row for request in requests])

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> LeaseRequest:
        return LeaseRequest.from_queue_row(self.tenant, self.rows[index])

    def __iter__(self) -> Iterator[LeaseRequest]:
        return (LeaseRequest.from_queue_row(self.tenant, row) for row in self.rows)

    def copy(self) -> RequestQueue:
        return RequestQueue(self.tenant, list(self.rows))

    def append(self, request: LeaseRequest) -> None:
        """Queue `request` after every request of the same or a higher priority (FIFO among equals)."""
        row = request.queue_row
        if not self.rows or _row_priority(self.rows[-1]) >= request.priority:
            self.rows.append(row)  # the common case (all priorities equal): no scan
            return
        position = next(index for index, other in enumerate(self.rows) if _row_priority(other) < request.priority)
        self.rows.insert(position, row)

    def heads(self) -> list[LeaseRequest]:
        """The oldest Regular and the oldest Spot request: Spot and Regular cores are limited apart, so a Spot
        request waiting for Spot cores must not hold back the tenant's Regular ones (nor the other way)."""
        first_of: dict[bool, LeaseRequest] = {}
        for row in self.rows:
            spot = _row_spot(row)
            if spot not in first_of:
                first_of[spot] = LeaseRequest.from_queue_row(self.tenant, row)
                if len(first_of) == 2:
                    break
        return list(first_of.values())

    def find(self, lease_id: str) -> LeaseRequest | None:
        for row in self.rows:
            if row[0] == lease_id:
                return LeaseRequest.from_queue_row(self.tenant, row)
        return None

    def remove(self, lease_id: str) -> None:
        self.rows = [row for row in self.rows if row[0] != lease_id]


def _pack_rows(rows: list[list[Any]]) -> dict[str, Any]:
    """A tenant's queue rows stored compactly: a thousand waiting requests of a few jobs share their lease-id
    prefixes (`task:<tenant>:<job>:`), their shapes (cores, memory, Spot) and most digits of their request
    times, so each row keeps only an index, its own suffix, a shape index and a time offset."""
    prefixes: dict[str, int] = {}
    shapes: dict[tuple[Any, ...], int] = {}
    base = min(row[3] for row in rows)
    packed = []
    for row in rows:
        head, colon, suffix = str(row[0]).rpartition(":")
        prefix_index = prefixes.setdefault(head + colon, len(prefixes))
        shape_index = shapes.setdefault((row[1], row[2], *row[4:]), len(shapes))
        packed.append([prefix_index, suffix, shape_index, row[3] - base])
    return {"prefixes": list(prefixes), "shapes": [list(shape) for shape in shapes], "base": base, "rows": packed}


def _unpack_rows(packed: Mapping[str, Any]) -> list[list[Any]]:
    prefixes, shapes, base = packed["prefixes"], packed["shapes"], packed["base"]
    return [
        [prefixes[prefix] + suffix, *shapes[shape][:2], base + offset, *shapes[shape][2:]]
        for prefix, suffix, shape, offset in packed["rows"]
    ]


@dataclass(frozen=True)
class RegionLimits:
    """What the subscription may run in the region (settings sized to its ACI quotas and rate limits)."""

    max_groups: int
    max_cores: float  # Regular (Standard) cores
    max_spot_cores: float
    create_limits: tuple[WindowLimit, ...] = armrate.parse_limits(armrate.DEFAULT_CREATE_LIMITS)
    delete_limits: tuple[WindowLimit, ...] = armrate.parse_limits(armrate.DEFAULT_DELETE_LIMITS)


@dataclass
class CapacityState:
    max_groups: int
    max_cores: float
    quotas: dict[str, Quota] = field(default_factory=dict)
    running: dict[str, Lease] = field(default_factory=dict)
    queues: dict[str, RequestQueue] = field(default_factory=dict)
    max_spot_cores: float = 0.0
    creates: WriteAdmission = field(
        default_factory=lambda: WriteAdmission(armrate.parse_limits(armrate.DEFAULT_CREATE_LIMITS))
    )
    deletes: WriteAdmission = field(
        default_factory=lambda: WriteAdmission(armrate.parse_limits(armrate.DEFAULT_DELETE_LIMITS))
    )

    @classmethod
    def empty(cls, max_groups: int, max_cores: float, max_spot_cores: float | None = None) -> CapacityState:
        spot = max_cores if max_spot_cores is None else max_spot_cores
        return cls(max_groups=max_groups, max_cores=max_cores, max_spot_cores=spot)

    @property
    def limits(self) -> RegionLimits:
        return RegionLimits(
            self.max_groups, self.max_cores, self.max_spot_cores, self.creates.limits, self.deletes.limits
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "maxGroups": self.max_groups,
            "maxCores": self.max_cores,
            "maxSpotCores": self.max_spot_cores,
            "creates": self.creates.to_dict(),
            "deletes": self.deletes.to_dict(),
            "quotas": {tenant: quota.to_dict() for tenant, quota in self.quotas.items()},
            # The entity stores this once per operation: reuse each lease's and request's dict.
            "running": [lease.stored_form for lease in self.running.values()],
            "queued": {tenant: _pack_rows(queue.rows) for tenant, queue in self.queues.items() if queue},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CapacityState:
        running = [Lease.from_dict(item) for item in data.get("running", [])]
        return cls(
            max_groups=int(data["maxGroups"]),
            max_cores=float(data["maxCores"]),
            max_spot_cores=float(data.get("maxSpotCores", data["maxCores"])),
            creates=WriteAdmission.from_dict(data.get("creates"), armrate.DEFAULT_CREATE_LIMITS),
            deletes=WriteAdmission.from_dict(data.get("deletes"), armrate.DEFAULT_DELETE_LIMITS),
            quotas={tenant: Quota.from_dict(quota) for tenant, quota in data.get("quotas", {}).items()},
            running={lease.request.lease_id: lease for lease in running},
            queues={
                **{tenant: RequestQueue.from_legacy(tenant, rows) for tenant, rows in data.get("queues", {}).items()},
                **{tenant: RequestQueue(tenant, list(rows)) for tenant, rows in data.get("waiting", {}).items()},
                **{
                    tenant: RequestQueue(tenant, _unpack_rows(packed))
                    for tenant, packed in data.get("queued", {}).items()
                },
            },
        )

    # -- usage helpers -------------------------------------------------------------------------------------

    def tenant_usage(self, tenant: str) -> tuple[int, float, float]:
        leases = [lease.request for lease in self.running.values() if lease.request.tenant == tenant]
        return len(leases), sum(r.cores for r in leases), sum(r.memory_gb for r in leases)

    def region_usage(self) -> tuple[int, float]:
        """Running groups and Regular cores (Spot cores: `spot_cores`)."""
        regular = (lease.request.cores for lease in self.running.values() if not lease.request.spot)
        return len(self.running), sum(regular)

    def spot_cores(self) -> float:
        return sum(lease.request.cores for lease in self.running.values() if lease.request.spot)

    def blocked_by(self, request: LeaseRequest) -> str | None:
        """What keeps `request` from running now, in words (None when it fits)."""
        quota = self.quotas.get(request.tenant)
        if quota is None:
            return f"tenant '{request.tenant}' has no quota"
        groups, cores, memory = self.tenant_usage(request.tenant)
        if groups + 1 > quota.max_groups:
            return f"tenant quota: {groups} of {quota.max_groups} container groups in use"
        if cores + request.cores > quota.max_cores + EPSILON:
            return f"tenant quota: {cores:g} of {quota.max_cores:g} cores in use"
        if memory + request.memory_gb > quota.max_memory_gb + EPSILON:
            return f"tenant quota: {memory:g} of {quota.max_memory_gb:g} GB in use"
        region_groups, region_cores = self.region_usage()
        if region_groups + 1 > self.max_groups:
            return f"regional capacity: {region_groups} of {self.max_groups} container groups in use"
        if request.spot:
            spot = self.spot_cores()
            if spot + request.cores > self.max_spot_cores + EPSILON:
                return f"Spot quota: {spot:g} of {self.max_spot_cores:g} Spot cores in use"
        elif region_cores + request.cores > self.max_cores + EPSILON:
            return f"regional capacity: {region_cores:g} of {self.max_cores:g} cores in use"
        return None

    def fits_now(self, request: LeaseRequest) -> bool:
        return self.blocked_by(request) is None

    def clone(self) -> CapacityState:
        """A copy safe to change: leases and requests are immutable, so only the containers are copied."""
        return CapacityState(
            max_groups=self.max_groups,
            max_cores=self.max_cores,
            quotas=dict(self.quotas),
            running=dict(self.running),
            queues={tenant: queue.copy() for tenant, queue in self.queues.items()},
            max_spot_cores=self.max_spot_cores,
            creates=self.creates.copy(),
            deletes=self.deletes.copy(),
        )

    def queued(self, lease_id: str) -> LeaseRequest | None:
        for queue in self.queues.values():
            request = queue.find(lease_id)
            if request is not None:
                return request
        return None


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


def acquire(state: CapacityState, request: LeaseRequest) -> tuple[CapacityState, AcquireResult]:
    """Ask for a lease; idempotent by lease id (a granted lease stays GRANTED, a queued one QUEUED)."""
    if request.lease_id in state.running:
        return state, AcquireResult(AcquireStatus.GRANTED, create_at=state.running[request.lease_id].create_at)
    if state.queued(request.lease_id) is not None:
        return state, AcquireResult(AcquireStatus.QUEUED, _queued_reason(state, request))
    reason = _never_fits(state, request)
    if reason is not None:
        return state, AcquireResult(AcquireStatus.REJECTED, reason)
    new = state.clone()
    new.queues.setdefault(request.tenant, RequestQueue(request.tenant)).append(request)
    _dispatch(new, request.requested_at)
    lease = new.running.get(request.lease_id)
    if lease is not None:
        return new, AcquireResult(AcquireStatus.GRANTED, create_at=lease.create_at)
    return new, AcquireResult(AcquireStatus.QUEUED, _queued_reason(new, request))


def _queued_reason(state: CapacityState, request: LeaseRequest) -> str:
    blocked = state.blocked_by(request)
    if blocked is not None:
        return blocked
    queue = state.queues.get(request.tenant)
    ahead = next((index for index, row in enumerate(queue.rows) if row[0] == request.lease_id), 0) if queue else 0
    return f"fair queue: {ahead} earlier request(s) of this tenant first"


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
