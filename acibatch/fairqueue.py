"""One tenant's fair queue of waiting lease requests, kept as compact rows, and its packed stored form."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from acibatch.leases import LeaseRequest, row_priority, row_spot


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
        if not self.rows or row_priority(self.rows[-1]) >= request.priority:
            self.rows.append(row)  # the common case (all priorities equal): no scan
            return
        position = next(index for index, other in enumerate(self.rows) if row_priority(other) < request.priority)
        self.rows.insert(position, row)

    def heads(self) -> list[LeaseRequest]:
        """The oldest Regular and the oldest Spot request: Spot and Regular cores are limited apart, so a Spot
        request waiting for Spot cores must not hold back the tenant's Regular ones (nor the other way)."""
        first_of: dict[bool, LeaseRequest] = {}
        for row in self.rows:
            spot = row_spot(row)
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


def pack_rows(rows: list[list[Any]]) -> dict[str, Any]:
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


def unpack_rows(packed: Mapping[str, Any]) -> list[list[Any]]:
    prefixes, shapes, base = packed["prefixes"], packed["shapes"], packed["base"]
    return [
        [prefixes[prefix] + suffix, *shapes[shape][:2], base + offset, *shapes[shape][2:]]
        for prefix, suffix, shape, offset in packed["rows"]
    ]
