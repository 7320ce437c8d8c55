"""The `capacity` entity's operations: acquire, release, reserve_create, reserve_delete, set_quota, and the
`CapacityGranted` event its grants raise (through the `wake_waiters` activity)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar, Self

from acibatch.leases import Lease, LeaseRequest, Quota
from acibatch.messages.wire import optional_float


class Grant(StrEnum):
    """The capacity entity's answer to `acquire`."""

    GRANTED = "GRANTED"
    QUEUED = "QUEUED"
    REJECTED = "REJECTED"


@dataclass(frozen=True, slots=True)
class LeaseAsk:
    """`acquire`'s input: a task attempt asks for a lease. Values go on the wire as the task gave them (a whole
    number of cores stays an int), so the orchestrator's history does not change; the entity converts."""

    lease_id: str
    tenant: str
    cores: float
    memory_gb: float
    requested_at: float
    spot: bool = False
    priority: int = 0  # the job's jobPriority; sent only when set

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "leaseId": self.lease_id,
            "tenant": self.tenant,
            "cores": self.cores,
            "memoryGb": self.memory_gb,
            "requestedAt": self.requested_at,
            "spot": self.spot,
        }
        if self.priority:
            data["priority"] = self.priority
        return data

    @staticmethod
    def parse(data: Mapping[str, Any]) -> LeaseRequest:
        """The entity reads an ask as the request it queues (numbers converted, defaults filled in)."""
        return LeaseRequest.from_dict(data)


@dataclass(frozen=True, slots=True)
class AcquireAnswer:
    status: Grant
    reason: str | None = None  # REJECTED: why never; QUEUED: what it waits for
    create_at: float | None = None  # GRANTED: the create slot reserved for the lease
    # QUEUED: the least number of turns of the tenant's running leases before this one can be granted (1: it is
    # next, or blocked only by what is running). None in an answer recorded before the field existed: one turn.
    rounds: int | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"status": str(self.status), "reason": self.reason, "createAt": self.create_at}
        if self.rounds is not None:
            data["rounds"] = self.rounds
        return data

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> AcquireAnswer:
        rounds = data.get("rounds")
        return cls(
            Grant(data["status"]),
            data.get("reason"),
            optional_float(data, "createAt"),
            rounds if isinstance(rounds, int) and not isinstance(rounds, bool) and rounds >= 1 else None,
        )


@dataclass(frozen=True, slots=True)
class ReleaseAsk:
    lease_id: str
    now: float

    def to_dict(self) -> dict[str, Any]:
        return {"leaseId": self.lease_id, "now": self.now}

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> ReleaseAsk:
        return cls(str(data["leaseId"]), float(data.get("now", 0)))


@dataclass(frozen=True, slots=True)
class ReleaseAnswer:
    """`release`'s answer: the leases the release granted, in order, and the lease it ended (None: it withdrew a
    queued request, or the lease was gone), each in its stored form (`acibatch.leases.Lease.to_dict`).

    The granted leases are handed on to `wake_waiters` exactly as they came, and only the fields the task reads
    are required of them (an answer recorded in an older history may carry less)."""

    granted: tuple[Mapping[str, Any], ...]
    released: Mapping[str, Any] | None

    @classmethod
    def of(cls, granted: Sequence[Lease], released: Lease | None) -> ReleaseAnswer:
        return cls(tuple(lease.to_dict() for lease in granted), None if released is None else released.to_dict())

    def to_dict(self) -> dict[str, Any]:
        return {"granted": list(self.granted), "released": self.released}

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> ReleaseAnswer:
        return cls(tuple(data.get("granted", [])), data.get("released") or None)

    @property
    def granted_ids(self) -> list[str]:
        return [lease["leaseId"] for lease in self.granted]

    @property
    def held_since(self) -> float | None:
        """When the ended lease began to count (granted, or its create slot if later); None: no lease ended."""
        if self.released is None:
            return None
        return max(float(self.released["startedAt"]), float(self.released.get("createAt", 0.0)))


@dataclass(frozen=True, slots=True)
class CreateSlotAsk:
    """`reserve_create`: a new create slot, not before `not_before`, for a granted lease whose create is sent
    again; `throttled` when ARM answered 429 (every later slot moves past `not_before` too)."""

    lease_id: str
    now: float
    not_before: float
    throttled: bool

    def to_dict(self) -> dict[str, Any]:
        return {"leaseId": self.lease_id, "now": self.now, "notBefore": self.not_before, "throttled": self.throttled}

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> CreateSlotAsk:
        return cls(
            str(data["leaseId"]),
            float(data["now"]),
            float(data.get("notBefore", 0)),
            bool(data.get("throttled", False)),
        )


@dataclass(frozen=True, slots=True)
class SlotAnswer:
    """A reserved slot: the instant (epoch seconds) the write may be sent, under the subclass's key."""

    KEY: ClassVar[str]
    at: float | None

    def to_dict(self) -> dict[str, Any]:
        return {self.KEY: self.at}

    @classmethod
    def parse(cls, data: Any) -> Self:
        """`at` is None for an answer without a slot (a create slot for a lease that is gone) or no answer."""
        return cls(optional_float(data, cls.KEY))


class CreateSlotAnswer(SlotAnswer):
    __slots__ = ()
    KEY = "createAt"


@dataclass(frozen=True, slots=True)
class DeleteSlotAsk:
    now: float
    not_before: float
    throttled: bool  # ARM refused a delete with Retry-After up to `not_before`

    def to_dict(self) -> dict[str, Any]:
        return {"now": self.now, "notBefore": self.not_before, "throttled": self.throttled}

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> DeleteSlotAsk:
        return cls(float(data["now"]), float(data.get("notBefore", 0)), bool(data.get("throttled", False)))


class DeleteSlotAnswer(SlotAnswer):
    __slots__ = ()
    KEY = "deleteAt"


@dataclass(frozen=True, slots=True)
class QuotaChange:
    """`set_quota` (signalled by the API when a tenant is created or changed)."""

    tenant: str
    quota: Quota

    def to_dict(self) -> dict[str, Any]:
        return {"tenant": self.tenant, "quota": self.quota.to_dict()}

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> QuotaChange:
        return cls(str(data["tenant"]), Quota.from_dict(data["quota"]))


@dataclass(frozen=True, slots=True)
class QuotaAnswer:
    granted: tuple[Lease, ...]  # the waiting requests the new quota let run

    def to_dict(self) -> dict[str, Any]:
        return {"granted": [lease.to_dict() for lease in self.granted]}


@dataclass(frozen=True, slots=True)
class CapacityGranted:
    """The `CapacityGranted` event raised to each granted lease's task: the granted lease ids, and each one's
    create slot, so the woken task creates without asking the entity again."""

    leases: tuple[str, ...]
    create_at: Mapping[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {"leases": list(self.leases), "createAt": dict(self.create_at)}

    @classmethod
    def from_granted(cls, granted: list[Any]) -> CapacityGranted:
        """From `wake_waiters`' input: granted leases as the entity gave them (or, from older callers, bare ids)."""
        leases = tuple(lease["leaseId"] if isinstance(lease, Mapping) else str(lease) for lease in granted)
        create_at = {lease["leaseId"]: lease.get("createAt", 0.0) for lease in granted if isinstance(lease, Mapping)}
        return cls(leases, create_at)

    @classmethod
    def parse(cls, data: Any) -> CapacityGranted | None:
        """None for a payload that is not a grant (a foreign or malformed event)."""
        if not isinstance(data, Mapping):
            return None
        create_at = data.get("createAt", {})
        return cls(tuple(data.get("leases", [])), create_at if isinstance(create_at, Mapping) else {})

    def slot_for(self, lease_id: str) -> float | None:
        """The create slot granted to `lease_id`, or None when this grant is not for it."""
        if lease_id not in self.leases:
            return None
        return float(self.create_at.get(lease_id, 0.0))
