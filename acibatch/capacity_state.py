"""The capacity entity's state: the region's limits, every tenant's quota, the running leases, the fair queues
and the create and delete windows, with its stored form and the usage questions the granting rule asks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from acibatch import armrate
from acibatch.armrate import WindowLimit, WriteAdmission
from acibatch.fairqueue import RequestQueue, unpack_rows
from acibatch.leases import Lease, LeaseRequest, Quota

EPSILON = 1e-9  # float slack when summing cores and memory against a limit


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
            "queued": {tenant: queue.stored() for tenant, queue in self.queues.items() if queue},
        }

    def stored_json(self) -> dict[str, Any]:
        """`to_dict()` for orjson, what the entity stores: the same JSON, each queue's rows written from their kept
        encodings (`RequestQueue.stored_json`) rather than encoded again after every operation."""
        data = self.to_dict()
        data["queued"] = {tenant: queue.stored_json() for tenant, queue in self.queues.items() if queue}
        return data

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
                    tenant: RequestQueue(tenant, unpack_rows(packed))
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
        """A copy safe to change: leases and requests are immutable, so only the containers are copied. Each
        queue's id set and stored text move to the copy (`RequestQueue.copy`): the original stays correct but
        rebuilds them from its rows if it is used again, so carry on with the copy."""
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
