"""The sweep's messages: what it reads off a task orchestration's custom status, and the reclaim
orchestration's input (the stale leases, as `acibatch.reconcile` found them)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from acibatch.reconcile import Reclaim, ReclaimReason


@dataclass(frozen=True, slots=True)
class OwnerProgress:
    """The two fields of a task orchestration's custom status the sweep reads: the container group it is on (a
    group of another name is a former attempt's) and its attempt number. Either is None when the status does
    not say, or says something that is not one (a task still queued has no group; an attempt must be an int)."""

    group_name: str | None
    attempt: int | None

    @classmethod
    def parse(cls, custom: Any) -> OwnerProgress:
        if not isinstance(custom, Mapping):
            return cls(None, None)
        attempt = custom.get("attempt")
        # JSON true would pass isinstance(int): a bool is not an attempt number.
        valid = isinstance(attempt, int) and not isinstance(attempt, bool)
        return cls(custom.get("groupName"), attempt if valid else None)


@dataclass(frozen=True, slots=True)
class ReclaimOrder:
    """The reclaim orchestration's input: the leases to release, queued requests first (the order they run in)."""

    leases: tuple[Reclaim, ...]

    def to_list(self) -> list[dict[str, Any]]:
        return [lease.to_dict() for lease in self.leases]

    @classmethod
    def parse(cls, data: Sequence[Mapping[str, Any]] | None) -> ReclaimOrder:
        return cls(
            tuple(
                Reclaim(
                    str(item["leaseId"]),
                    str(item["owner"]),
                    ReclaimReason(item["reason"]),
                    bool(item["queued"]),
                    str(item["detail"]),
                )
                for item in data or ()
            )
        )
