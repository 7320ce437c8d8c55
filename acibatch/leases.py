"""Capacity leases: a tenant's quota, a task attempt's request for a lease, and a granted lease.

Immutable values with their stored forms (`to_dict`, and the compact row a waiting request is kept as in its
tenant's queue, `acibatch.fairqueue`); the capacity entity's state (`acibatch.capacity_state`) is built of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any


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
            row_spot(row),
            row_priority(row),
        )


def row_spot(row: list[Any]) -> bool:
    return len(row) > 4 and bool(row[4])


def row_priority(row: list[Any]) -> int:
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
