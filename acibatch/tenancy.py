"""Tenancy state machines: shared capacity with a weighted fair queue, and per-tenant accounting.

`CapacityState` is held by one Durable entity and is the single source of truth for scheduling: the
regional ACI limits (groups, cores), each tenant's quota, the running leases and a FIFO queue per tenant.
Every change runs one granting rule (`_dispatch`): while some tenant's oldest waiting request fits both its
own quota and the region, grant the request of the tenant with the lowest share, where a tenant's share is
its running cores divided by its weight (ties: the older request). A tenant with weight 2 therefore gets
about twice the cores of a tenant with weight 1 when both are waiting, and a tenant with little running is
served before a tenant with a long queue. New requests go through the same rule, so a newcomer never jumps
a queue. A head that does not fit right now is skipped, so one large request does not block small ones.

`TenantState` is per tenant (config and accounting, not scheduling): quota, API key hash, usage in
core-seconds and GB-seconds, task outcome counts and the job index.
All functions are pure: they return new state and never read a clock (callers pass `now`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Any

EPSILON = 1e-9
RECENT_LEASES_KEPT = 2000


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

    def to_dict(self) -> dict[str, Any]:
        return dict(self.stored_form)

    @cached_property
    def stored_form(self) -> dict[str, Any]:
        """`to_dict()` built once (the request never changes); shared, so read it, never change it."""
        return {
            "leaseId": self.lease_id,
            "tenant": self.tenant,
            "cores": self.cores,
            "memoryGb": self.memory_gb,
            "requestedAt": self.requested_at,
        }

    @cached_property
    def queue_row(self) -> list[Any]:
        """The compact stored form in a tenant's queue (the tenant is the queue's key): a thousand waiting
        requests are decoded and re-encoded on every batch of the capacity entity, so each is kept small, and
        whole numbers where they can be (encoding a float costs JSON several times an int): cores and memory
        as ints when whole, the request time in milliseconds."""
        cores, memory_gb = _whole_if_whole(self.cores), _whole_if_whole(self.memory_gb)
        return [self.lease_id, cores, memory_gb, round(self.requested_at * 1000)]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LeaseRequest:
        return cls(
            str(data["leaseId"]),
            str(data["tenant"]),
            float(data["cores"]),
            float(data["memoryGb"]),
            float(data["requestedAt"]),
        )

    @classmethod
    def from_queue_row(cls, tenant: str, row: list[Any]) -> LeaseRequest:
        lease_id, cores, memory_gb, requested_ms = row
        return cls(str(lease_id), tenant, float(cores), float(memory_gb), requested_ms / 1000)


def _whole_if_whole(value: float) -> float | int:
    return int(value) if float(value).is_integer() else float(value)


@dataclass(frozen=True)
class Lease:
    request: LeaseRequest
    started_at: float

    def to_dict(self) -> dict[str, Any]:
        return dict(self.stored_form)

    @cached_property
    def stored_form(self) -> dict[str, Any]:
        """`to_dict()` built once (the lease never changes); shared, so read it, never change it."""
        return {**self.request.stored_form, "startedAt": self.started_at}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Lease:
        return cls(LeaseRequest.from_dict(data), float(data["startedAt"]))


class AcquireStatus(StrEnum):
    GRANTED = "GRANTED"
    QUEUED = "QUEUED"
    REJECTED = "REJECTED"


@dataclass(frozen=True)
class AcquireResult:
    status: AcquireStatus
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"status": str(self.status), "reason": self.reason}


@dataclass(frozen=True)
class ReleaseResult:
    granted: list[LeaseRequest]
    released: Lease | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "granted": [request.to_dict() for request in self.granted],
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
        self.rows.append(request.queue_row)

    def pop_head(self) -> LeaseRequest:
        return LeaseRequest.from_queue_row(self.tenant, self.rows.pop(0))

    def find(self, lease_id: str) -> LeaseRequest | None:
        for row in self.rows:
            if row[0] == lease_id:
                return LeaseRequest.from_queue_row(self.tenant, row)
        return None

    def remove(self, lease_id: str) -> None:
        self.rows = [row for row in self.rows if row[0] != lease_id]


@dataclass
class CapacityState:
    max_groups: int
    max_cores: float
    quotas: dict[str, Quota] = field(default_factory=dict)
    running: dict[str, Lease] = field(default_factory=dict)
    queues: dict[str, RequestQueue] = field(default_factory=dict)

    @classmethod
    def empty(cls, max_groups: int, max_cores: float) -> CapacityState:
        return cls(max_groups=max_groups, max_cores=max_cores)

    def to_dict(self) -> dict[str, Any]:
        return {
            "maxGroups": self.max_groups,
            "maxCores": self.max_cores,
            "quotas": {tenant: quota.to_dict() for tenant, quota in self.quotas.items()},
            # The entity stores this once per operation: reuse each lease's and request's dict.
            "running": [lease.stored_form for lease in self.running.values()],
            "waiting": {tenant: list(queue.rows) for tenant, queue in self.queues.items() if queue},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CapacityState:
        running = [Lease.from_dict(item) for item in data.get("running", [])]
        return cls(
            max_groups=int(data["maxGroups"]),
            max_cores=float(data["maxCores"]),
            quotas={tenant: Quota.from_dict(quota) for tenant, quota in data.get("quotas", {}).items()},
            running={lease.request.lease_id: lease for lease in running},
            queues={
                **{tenant: RequestQueue.from_legacy(tenant, rows) for tenant, rows in data.get("queues", {}).items()},
                **{tenant: RequestQueue(tenant, list(rows)) for tenant, rows in data.get("waiting", {}).items()},
            },
        )

    # -- usage helpers -------------------------------------------------------------------------------------

    def tenant_usage(self, tenant: str) -> tuple[int, float, float]:
        leases = [lease.request for lease in self.running.values() if lease.request.tenant == tenant]
        return len(leases), sum(r.cores for r in leases), sum(r.memory_gb for r in leases)

    def region_usage(self) -> tuple[int, float]:
        return len(self.running), sum(lease.request.cores for lease in self.running.values())

    def fits_now(self, request: LeaseRequest) -> bool:
        quota = self.quotas.get(request.tenant)
        if quota is None:
            return False
        groups, cores, memory = self.tenant_usage(request.tenant)
        region_groups, region_cores = self.region_usage()
        return (
            groups + 1 <= quota.max_groups
            and cores + request.cores <= quota.max_cores + EPSILON
            and memory + request.memory_gb <= quota.max_memory_gb + EPSILON
            and region_groups + 1 <= self.max_groups
            and region_cores + request.cores <= self.max_cores + EPSILON
        )

    def clone(self) -> CapacityState:
        """A copy safe to change: leases and requests are immutable, so only the containers are copied."""
        return CapacityState(
            max_groups=self.max_groups,
            max_cores=self.max_cores,
            quotas=dict(self.quotas),
            running=dict(self.running),
            queues={tenant: queue.copy() for tenant, queue in self.queues.items()},
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
    if request.cores > state.max_cores + EPSILON:
        return f"a task needs {request.cores:g} cores but the region allows {state.max_cores:g}"
    return None


def _dispatch(state: CapacityState, now: float) -> list[LeaseRequest]:
    """Grant waiting heads in fair order while any fits (see the module docstring). Mutates `state`."""
    granted: list[LeaseRequest] = []
    while True:
        best: tuple[float, float, str] | None = None
        for tenant, queue in state.queues.items():
            if not queue:
                continue
            head = queue[0]
            if not state.fits_now(head):
                continue
            share = state.tenant_usage(tenant)[1] / max(state.quotas[tenant].weight, EPSILON)
            candidate = (share, head.requested_at, tenant)
            if best is None or candidate < best:
                best = candidate
        if best is None:
            return granted
        request = state.queues[best[2]].pop_head()
        state.running[request.lease_id] = Lease(request, now)
        granted.append(request)


def acquire(state: CapacityState, request: LeaseRequest) -> tuple[CapacityState, AcquireResult]:
    """Ask for a lease; idempotent by lease id (a granted lease stays GRANTED, a queued one QUEUED)."""
    if request.lease_id in state.running:
        return state, AcquireResult(AcquireStatus.GRANTED)
    if state.queued(request.lease_id) is not None:
        return state, AcquireResult(AcquireStatus.QUEUED)
    reason = _never_fits(state, request)
    if reason is not None:
        return state, AcquireResult(AcquireStatus.REJECTED, reason)
    new = state.clone()
    new.queues.setdefault(request.tenant, RequestQueue(request.tenant)).append(request)
    _dispatch(new, request.requested_at)
    status = AcquireStatus.GRANTED if request.lease_id in new.running else AcquireStatus.QUEUED
    return new, AcquireResult(status)


def release(state: CapacityState, lease_id: str, now: float) -> tuple[CapacityState, ReleaseResult]:
    """End a lease (or withdraw a queued request); reports the waiting requests this granted, in order."""
    new = state.clone()
    released = new.running.pop(lease_id, None)
    if released is None:
        for queue in new.queues.values():
            queue.remove(lease_id)
    granted = _dispatch(new, now)
    return new, ReleaseResult(granted, released)


def set_tenant_quota(
    state: CapacityState, tenant: str, quota: Quota, now: float = 0.0
) -> tuple[CapacityState, list[LeaseRequest]]:
    """Set a tenant's quota; raising it may grant waiting requests (returned)."""
    new = state.clone()
    new.quotas[tenant] = quota
    return new, _dispatch(new, now)


def set_region_limits(state: CapacityState, max_groups: int, max_cores: float) -> CapacityState:
    if state.max_groups == max_groups and state.max_cores == max_cores:
        return state
    new = state.clone()
    new.max_groups, new.max_cores = max_groups, max_cores
    return new


def snapshot(state: CapacityState, tenant: str) -> dict[str, Any]:
    groups, cores, memory = state.tenant_usage(tenant)
    return {
        "running_groups": groups,
        "running_cores": round(cores, 3),
        "running_memory_gb": round(memory, 3),
        "queued": len(state.queues.get(tenant, [])),
    }


# -- per-tenant accounting ----------------------------------------------------------------------------------

OUTCOMES = ("succeeded", "failed", "cancelled")


@dataclass
class TenantState:
    quota: Quota | None = None
    api_key_hash: str | None = None
    core_seconds: float = 0.0
    gb_seconds: float = 0.0
    task_counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)  # insertion order = submission order
    recent_leases: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "quota": None if self.quota is None else self.quota.to_dict(),
            "apiKeyHash": self.api_key_hash,
            "coreSeconds": self.core_seconds,
            "gbSeconds": self.gb_seconds,
            "taskCounts": self.task_counts,
            "jobs": list(self.jobs.values()),
            "recentLeases": self.recent_leases,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> TenantState:
        if not data:
            return cls()
        quota = data.get("quota")
        return cls(
            quota=None if quota is None else Quota.from_dict(quota),
            api_key_hash=data.get("apiKeyHash"),
            core_seconds=float(data.get("coreSeconds", 0.0)),
            gb_seconds=float(data.get("gbSeconds", 0.0)),
            task_counts={**dict.fromkeys(OUTCOMES, 0), **data.get("taskCounts", {})},
            jobs={job["jobId"]: dict(job) for job in data.get("jobs", [])},
            recent_leases=list(data.get("recentLeases", [])),
        )


def _clone(state: TenantState) -> TenantState:
    # Job records are replaced, never changed in place, so copying the containers is enough.
    return TenantState(
        quota=state.quota,
        api_key_hash=state.api_key_hash,
        core_seconds=state.core_seconds,
        gb_seconds=state.gb_seconds,
        task_counts=dict(state.task_counts),
        jobs=dict(state.jobs),
        recent_leases=list(state.recent_leases),
    )


def configure_tenant(state: TenantState, quota: Quota, api_key_hash: str | None) -> TenantState:
    new = _clone(state)
    new.quota = quota
    if api_key_hash is not None:
        new.api_key_hash = api_key_hash
    return new


def record_usage(state: TenantState, lease_id: str, cores: float, memory_gb: float, seconds: float) -> TenantState:
    """Add one lease's usage once. Duplicates of a release arrive close together (at-least-once delivery
    of the same step), so remembering the most recent lease ids is enough and keeps the state bounded."""
    if lease_id in state.recent_leases:
        return state
    new = _clone(state)
    new.core_seconds += cores * max(0.0, seconds)
    new.gb_seconds += memory_gb * max(0.0, seconds)
    new.recent_leases = [*new.recent_leases, lease_id][-RECENT_LEASES_KEPT:]
    return new


def count_task(state: TenantState, outcome: str) -> TenantState:
    key = outcome.lower()
    if key not in OUTCOMES:
        raise ValueError(f"unknown task outcome '{outcome}'")
    new = _clone(state)
    new.task_counts[key] = new.task_counts.get(key, 0) + 1
    return new


def register_job(state: TenantState, job_id: str, created_at: str, fingerprint: str) -> TenantState:
    if job_id in state.jobs:
        return state
    new = _clone(state)
    new.jobs[job_id] = {
        "jobId": job_id,
        "state": "Queued",
        "createdAt": created_at,
        "finishedAt": None,
        "fingerprint": fingerprint,
    }
    return new


def update_job(state: TenantState, job_id: str, job_state: str, finished_at: str | None = None) -> TenantState:
    new = _clone(state)
    job = dict(new.jobs.get(job_id) or {"jobId": job_id, "createdAt": None, "fingerprint": None})
    if job.get("finishedAt") is None:  # a finished job's record never goes back to Running
        job["state"] = job_state
        job["finishedAt"] = finished_at
    new.jobs[job_id] = job
    return new


def list_jobs(
    state: TenantState, state_filter: str | None, offset: int, limit: int
) -> tuple[list[dict[str, Any]], int]:
    """Newest first, optionally filtered by state; returns the page and the filtered total."""
    jobs = [
        {key: value for key, value in job.items() if key != "fingerprint"}
        for job in reversed(state.jobs.values())
        if state_filter is None or job.get("state") == state_filter
    ]
    return jobs[offset : offset + limit], len(jobs)
