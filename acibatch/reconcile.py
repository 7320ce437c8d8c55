"""Lease reconciliation: which capacity leases (and queued requests) have lost their owner and must be reclaimed.

Every lease is named `<task orchestration instance id>#<attempt>` and is released by the task orchestration that
took it. An owner that is gone (finished, failed, terminated, purged) or that has moved on to a later attempt
will never release it, and a leaked lease keeps its cores and group out of the regional limit for good. The
sweep reads the capacity state and each owner's status, asks this module what to reclaim, and releases those.

Pure: no clock, no I/O. An owner whose status could not be read is simply absent from `statuses` and its leases
are kept; only an owner known not to exist (`runtime_status=None`) counts as unknown. Leases and requests
younger than the grace are never touched, whatever their owner's status says: the status store may lag the
capacity entity, and a task that has just asked must never lose its place.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from acibatch.capacity_state import CapacityState

# int() refuses strings of more than 4300 digits (and a real attempt number is tiny): longer is not an attempt.
MAX_ATTEMPT_DIGITS = 9


class RuntimeStatus(StrEnum):
    """Durable runtime status names, as the status API spells them."""

    RUNNING = "Running"
    PENDING = "Pending"
    SUSPENDED = "Suspended"
    CONTINUED_AS_NEW = "ContinuedAsNew"
    COMPLETED = "Completed"
    FAILED = "Failed"
    TERMINATED = "Terminated"
    CANCELED = "Canceled"  # an old status no current backend sets; it means the instance is over


ALIVE = frozenset(
    {RuntimeStatus.RUNNING, RuntimeStatus.PENDING, RuntimeStatus.SUSPENDED, RuntimeStatus.CONTINUED_AS_NEW}
)


class ReclaimReason(StrEnum):
    OWNER_FINISHED = "OwnerFinished"
    OWNER_FAILED = "OwnerFailed"
    OWNER_TERMINATED = "OwnerTerminated"
    OWNER_UNKNOWN = "OwnerUnknown"
    OWNER_ON_LATER_ATTEMPT = "OwnerOnLaterAttempt"


_ENDED = {
    RuntimeStatus.COMPLETED: ReclaimReason.OWNER_FINISHED,
    RuntimeStatus.FAILED: ReclaimReason.OWNER_FAILED,
    RuntimeStatus.TERMINATED: ReclaimReason.OWNER_TERMINATED,
    RuntimeStatus.CANCELED: ReclaimReason.OWNER_TERMINATED,
}


@dataclass(frozen=True)
class OwnerStatus:
    """What the sweep learned about one owner instance: its runtime status name (None: the instance does not
    exist) and the attempt its custom status says it is on, if it says."""

    runtime_status: str | None
    attempt: int | None = None


@dataclass(frozen=True)
class LeaseOwner:
    instance_id: str
    attempt: int | None  # None when the id carries no readable attempt number


def parse_lease_id(lease_id: object) -> LeaseOwner | None:
    """The owner instance and attempt of a lease id; None when no owner can be read from it. Never raises.

    `task:t:j:1#2` is attempt 2 of `task:t:j:1`. An id without `#`, or with a suffix that is not a plain
    number, names its owner with no attempt (so it is reclaimed only when that owner is over or unknown).
    """
    if not isinstance(lease_id, str):
        return None
    owner, separator, suffix = lease_id.rpartition("#")
    if not separator:
        owner, suffix = lease_id, ""
    if not owner.strip():
        return None
    readable = suffix.isascii() and suffix.isdigit() and len(suffix) <= MAX_ATTEMPT_DIGITS
    return LeaseOwner(owner, int(suffix) if readable else None)


@dataclass(frozen=True)
class Held:
    """A running lease or a queued request, as the sweep sees it."""

    lease_id: str
    owner: LeaseOwner
    since: float  # when it was asked for or granted, whichever is later (seconds since the epoch)
    queued: bool


@dataclass(frozen=True)
class Reclaim:
    lease_id: str
    owner: str
    reason: ReclaimReason
    queued: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "leaseId": self.lease_id,
            "owner": self.owner,
            "reason": str(self.reason),
            "queued": self.queued,
            "detail": self.detail,
        }


def held(state: CapacityState) -> Iterator[Held]:
    """Every running lease, then every queued request, whose id names an owner."""
    for lease_id, lease in state.running.items():
        owner = parse_lease_id(lease_id)
        if owner is not None:
            yield Held(lease_id, owner, max(lease.started_at, lease.request.requested_at), queued=False)
    for queue in state.queues.values():
        for request in queue:
            owner = parse_lease_id(request.lease_id)
            if owner is not None:
                yield Held(request.lease_id, owner, request.requested_at, queued=True)


def past_grace(state: CapacityState, now: float, grace_seconds: float) -> list[Held]:
    """The leases and requests old enough to be looked at: only their owners' statuses need reading."""
    return [item for item in held(state) if now - item.since >= grace_seconds]


def owners_to_check(state: CapacityState, now: float, grace_seconds: float) -> list[str]:
    """The owner instances whose status the sweep must read, each once, in the state's order."""
    return list(dict.fromkeys(item.owner.instance_id for item in past_grace(state, now, grace_seconds)))


def reason_for(item: Held, status: OwnerStatus) -> tuple[ReclaimReason, str] | None:
    """Why `item` is stale given its owner's status, with a sentence for the log; None to keep it."""
    owner = item.owner.instance_id
    if status.runtime_status is None:
        return ReclaimReason.OWNER_UNKNOWN, f"its owner {owner} does not exist"
    try:
        runtime = RuntimeStatus(status.runtime_status)
    except ValueError:
        return None  # a status this code does not know: never take capacity on a guess
    ended = _ENDED.get(runtime)
    if ended is not None:
        return ended, f"its owner {owner} is {runtime}"
    if (
        runtime in ALIVE
        and status.attempt is not None
        and item.owner.attempt is not None
        and status.attempt > item.owner.attempt
    ):
        return (
            ReclaimReason.OWNER_ON_LATER_ATTEMPT,
            f"its owner {owner} is on attempt {status.attempt}, past attempt {item.owner.attempt}",
        )
    return None


def stale_leases(
    state: CapacityState, statuses: Mapping[str, OwnerStatus], now: float, grace_seconds: float
) -> list[Reclaim]:
    """The leases and queued requests to reclaim, queued requests first (see `orchestrators/reclaim.py`).

    An owner missing from `statuses` (its status could not be read) keeps everything it holds.
    """
    found: list[Reclaim] = []
    for item in past_grace(state, now, grace_seconds):
        status = statuses.get(item.owner.instance_id)
        decided = None if status is None else reason_for(item, status)
        if decided is not None:
            reason, detail = decided
            found.append(Reclaim(item.lease_id, item.owner.instance_id, reason, item.queued, detail))
    # Withdrawing a dead owner's queued request before releasing any lease keeps that release from granting it.
    return sorted(found, key=lambda reclaim: not reclaim.queued)
