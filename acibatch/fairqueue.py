"""One tenant's fair queue of waiting lease requests, kept as compact rows, and its packed stored form."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from acibatch.leases import LeaseRequest, row_priority, row_spot


class RequestQueue:
    """One tenant's waiting requests, oldest first, kept as their compact stored rows.

    The capacity entity runs one operation at a time and stores its whole state after each (the Durable SDK calls
    the entity function once per operation), and a big job queues ten thousand requests at once. So what an
    operation does with the queue costs it no more than it needs: rows become `LeaseRequest`s only when read,
    membership is a set, the heads are known without a scan unless Spot and Regular requests are mixed, a grant
    takes the head, and the packed stored form (`PackedRows`) is kept up to date as rows join at the end and
    leave from the head instead of being rebuilt. A state's `clone` copies the queue, so a stored state's is
    never changed.
    """

    __slots__ = ("_ids", "_packed", "_spot", "rows", "tenant")

    def __init__(self, tenant: str, rows: list[list[Any]] | None = None) -> None:
        self.tenant = tenant
        self.rows: list[list[Any]] = [] if rows is None else rows
        self._ids = {str(row[0]) for row in self.rows}
        self._spot = sum(1 for row in self.rows if row_spot(row))
        self._packed: PackedRows | None = None

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

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RequestQueue) and (self.tenant, self.rows) == (other.tenant, other.rows)

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dataclass it replaced

    def __repr__(self) -> str:
        return f"RequestQueue({self.tenant!r}, {len(self.rows)} rows)"

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> LeaseRequest:
        return LeaseRequest.from_queue_row(self.tenant, self.rows[index])

    def __iter__(self) -> Iterator[LeaseRequest]:
        return (LeaseRequest.from_queue_row(self.tenant, row) for row in self.rows)

    def copy(self) -> RequestQueue:
        twin = RequestQueue.__new__(RequestQueue)
        twin.tenant, twin.rows, twin._ids, twin._spot = self.tenant, list(self.rows), set(self._ids), self._spot
        twin._packed = None if self._packed is None else self._packed.copy()
        return twin

    def append(self, request: LeaseRequest) -> None:
        """Queue `request` after every request of the same or a higher priority (FIFO among equals)."""
        row = request.queue_row
        self._ids.add(request.lease_id)
        self._spot += row_spot(row)
        if not self.rows or row_priority(self.rows[-1]) >= request.priority:
            self.rows.append(row)  # the common case (all priorities equal): no scan
            if self._packed is not None:
                self._packed.append(row)
            return
        position = next(index for index, other in enumerate(self.rows) if row_priority(other) < request.priority)
        self.rows.insert(position, row)
        self._packed = None

    def heads(self) -> list[LeaseRequest]:
        """The oldest Regular and the oldest Spot request: Spot and Regular cores are limited apart, so a Spot
        request waiting for Spot cores must not hold back the tenant's Regular ones (nor the other way)."""
        if not self.rows:
            return []
        if self._spot in (0, len(self.rows)):  # one kind only: the head is the only one
            return [LeaseRequest.from_queue_row(self.tenant, self.rows[0])]
        first_of: dict[bool, LeaseRequest] = {}
        for row in self.rows:
            spot = row_spot(row)
            if spot not in first_of:
                first_of[spot] = LeaseRequest.from_queue_row(self.tenant, row)
                if len(first_of) == 2:
                    break
        return list(first_of.values())

    def _index(self, lease_id: str) -> int | None:
        if lease_id not in self._ids:
            return None
        if self.rows[0][0] == lease_id:
            return 0
        if self.rows[-1][0] == lease_id:
            return len(self.rows) - 1
        return next(index for index, row in enumerate(self.rows) if row[0] == lease_id)

    def position(self, lease_id: str) -> int:
        """How many requests are ahead of `lease_id` (0 when it is not queued)."""
        return self._index(lease_id) or 0

    def find(self, lease_id: str) -> LeaseRequest | None:
        index = self._index(lease_id)
        return None if index is None else LeaseRequest.from_queue_row(self.tenant, self.rows[index])

    def remove(self, lease_id: str) -> None:
        index = self._index(lease_id)
        if index is None:
            return
        row = self.rows.pop(index)
        self._ids.discard(lease_id)
        self._spot -= row_spot(row)
        if not self.rows or (index != 0 and self._packed is not None):
            self._packed = None  # an empty queue starts its packing afresh; a middle one is rebuilt when stored
        elif self._packed is not None:
            self._packed.pop_head()

    def stored(self) -> dict[str, Any]:
        """The packed stored form (`PackedRows`) of a non-empty queue."""
        if self._packed is None or self._packed.stale(len(self.rows)):
            self._packed = PackedRows(self.rows)
        return self._packed.to_dict()


class PackedRows:
    """A tenant's queue rows stored compactly: a thousand waiting requests of a few jobs share their lease-id
    prefixes (`task:<tenant>:<job>:`), their shapes (cores, memory, Spot) and most digits of their request
    times, so each row keeps only an index, its own suffix, a shape index and a time offset from `base`.

    Rows that join at the end are packed as they come and the head's leaves, so storing the queue after an
    operation does not pack every row again. Prefixes and shapes of rows that have left stay until the form is
    rebuilt (the queue empties, or they outnumber the rows): `stale`.
    """

    __slots__ = ("base", "packed", "prefixes", "shapes")

    def __init__(self, rows: list[list[Any]]) -> None:
        self.prefixes: dict[str, int] = {}
        self.shapes: dict[tuple[Any, ...], int] = {}
        self.base = min(row[3] for row in rows) if rows else 0
        self.packed = [self._pack(row) for row in rows]

    def _pack(self, row: list[Any]) -> list[Any]:
        head, colon, suffix = str(row[0]).rpartition(":")
        prefix_index = self.prefixes.setdefault(head + colon, len(self.prefixes))
        shape_index = self.shapes.setdefault((row[1], row[2], *row[4:]), len(self.shapes))
        return [prefix_index, suffix, shape_index, row[3] - self.base]

    def append(self, row: list[Any]) -> None:
        self.packed.append(self._pack(row))

    def pop_head(self) -> None:
        self.packed.pop(0)

    def stale(self, rows: int) -> bool:
        return len(self.prefixes) + len(self.shapes) > rows + 64

    def copy(self) -> PackedRows:
        twin = PackedRows.__new__(PackedRows)
        twin.prefixes, twin.shapes, twin.base, twin.packed = (
            dict(self.prefixes),
            dict(self.shapes),
            self.base,
            list(self.packed),
        )
        return twin

    def to_dict(self) -> dict[str, Any]:
        """Shares the row list: encode it before the queue changes again."""
        shapes = [list(shape) for shape in self.shapes]
        return {"prefixes": list(self.prefixes), "shapes": shapes, "base": self.base, "rows": self.packed}


def pack_rows(rows: list[list[Any]]) -> dict[str, Any]:
    """`rows` in the packed stored form (`PackedRows`)."""
    return PackedRows(rows).to_dict()


def unpack_rows(packed: Mapping[str, Any]) -> list[list[Any]]:
    prefixes, shapes, base = packed["prefixes"], packed["shapes"], packed["base"]
    return [
        [prefixes[prefix] + suffix, *shapes[shape][:2], base + offset, *shapes[shape][2:]]
        for prefix, suffix, shape, offset in packed["rows"]
    ]
