"""One tenant's fair queue of waiting lease requests, kept as compact rows, and its packed stored form."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import orjson

from acibatch.leases import LeaseRequest, row_priority, row_spot


class RequestQueue:
    """One tenant's waiting requests, oldest first, kept as their compact stored rows.

    The capacity entity runs one operation at a time and stores its whole state after each (the Durable SDK calls
    the entity function once per operation), and a big job queues ten thousand requests at once. So what an
    operation does with the queue costs it no more than it needs: rows become `LeaseRequest`s only when read,
    membership is a set, the heads are known without a scan unless Spot and Regular requests are mixed, a grant
    takes the head, and the packed stored form (`PackedRows`) is kept up to date as rows join and leave instead
    of being rebuilt. A state's `clone` copies the queue's rows, so a stored state's rows never change; the copy
    takes the id set and packed form over (`copy`).
    """

    __slots__ = ("_ids", "_packed", "_spot", "rows", "tenant")

    def __init__(self, tenant: str, rows: list[list[Any]] | None = None) -> None:
        self.tenant = tenant
        self.rows: list[list[Any]] = [] if rows is None else rows
        self._ids: set[str] | None = None  # built when first needed
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
        # The copy takes the id set and the packed form over instead of copying them (each is as long as the
        # queue): the capacity entity carries on with the copy and drops the original, which, if it is used again,
        # builds them afresh from its rows.
        twin.tenant, twin.rows, twin._spot = self.tenant, list(self.rows), self._spot
        twin._ids, twin._packed = self._ids, self._packed
        self._ids, self._packed = None, None
        return twin

    def _id_set(self) -> set[str]:
        if self._ids is None:
            self._ids = {str(row[0]) for row in self.rows}
        return self._ids

    def append(self, request: LeaseRequest) -> None:
        """Queue `request` after every request of the same or a higher priority (FIFO among equals)."""
        row = request.queue_row
        self._id_set().add(request.lease_id)
        self._spot += row_spot(row)
        if not self.rows or row_priority(self.rows[-1]) >= request.priority:
            self.rows.append(row)  # the common case (all priorities equal): no scan
            if self._packed is not None:
                self._packed.append(row)
            return
        position = next(index for index, other in enumerate(self.rows) if row_priority(other) < request.priority)
        self.rows.insert(position, row)
        if self._packed is not None:
            self._packed.insert(position, row)

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
        if lease_id not in self._id_set():
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
        self._id_set().discard(lease_id)
        self._spot -= row_spot(row)
        if not self.rows:
            self._packed = None  # an empty queue starts its packing afresh
        elif self._packed is not None:
            self._packed.pop(index)

    def stored(self) -> dict[str, Any]:
        """The packed stored form (`PackedRows`) of a non-empty queue."""
        return self._packed_rows().to_dict()

    def stored_json(self) -> dict[str, Any]:
        """`stored()` for orjson, its rows already encoded (`PackedRows.to_json`): the same JSON, made faster."""
        return self._packed_rows().to_json()

    def _packed_rows(self) -> PackedRows:
        if self._packed is None or self._packed.stale(len(self.rows)):
            self._packed = PackedRows(self.rows)
        return self._packed


class PackedRows:
    """A tenant's queue rows stored compactly: a thousand waiting requests of a few jobs share their lease-id
    prefixes (`task:<tenant>:<job>:`), their shapes (cores, memory, Spot) and most digits of their request
    times, so each row keeps only an index, its own suffix, a shape index and a time offset from `base`.

    Rows are packed as they join and dropped as they leave, wherever they are in the queue, so storing the queue
    after an operation does not pack every row again. Prefixes and shapes of rows that have left stay until the form is
    rebuilt (the queue empties, or they outnumber the rows): `stale`.

    The rows are also kept as their JSON text (`text`: each row's encoding, comma-separated, with each one's
    length in `sizes`), edited in place as rows join and leave, so writing the queue after an operation copies
    bytes instead of encoding ten thousand rows again (`to_json`): the capacity entity stores its state after
    every operation, and encoding a long queue each time was a large part of an operation's cost.
    """

    __slots__ = ("base", "packed", "prefixes", "shapes", "sizes", "text")

    def __init__(self, rows: list[list[Any]]) -> None:
        self.prefixes: dict[str, int] = {}
        self.shapes: dict[tuple[Any, ...], int] = {}
        self.base = min(row[3] for row in rows) if rows else 0
        self.packed = [self._pack(row) for row in rows]
        self.text: bytearray | None = None  # made when first written, then kept in step
        self.sizes: list[int] = []

    def _pack(self, row: list[Any]) -> list[Any]:
        head, colon, suffix = str(row[0]).rpartition(":")
        prefix_index = self.prefixes.setdefault(head + colon, len(self.prefixes))
        shape_index = self.shapes.setdefault((row[1], row[2], *row[4:]), len(self.shapes))
        return [prefix_index, suffix, shape_index, row[3] - self.base]

    def append(self, row: list[Any]) -> None:
        self.insert(len(self.packed), row)

    def insert(self, index: int, row: list[Any]) -> None:
        packed = self._pack(row)
        self.packed.insert(index, packed)
        if self.text is None:
            return
        piece = orjson.dumps(packed)
        if index == len(self.sizes):  # at the end: the common case
            self.text += b"," + piece if self.sizes else piece
        else:
            start = sum(self.sizes[:index]) + index  # each row before it is followed by a comma
            self.text[start:start] = piece + b","
        self.sizes.insert(index, len(piece))

    def pop(self, index: int) -> None:
        self.packed.pop(index)
        if self.text is None:
            return
        size = self.sizes.pop(index)
        start = sum(self.sizes[:index]) + index
        if not self.sizes:
            self.text.clear()
        elif index == len(self.sizes):  # the last row: the comma before it goes with it
            del self.text[start - 1 : start + size]
        else:
            del self.text[start : start + size + 1]

    def stale(self, rows: int) -> bool:
        return len(self.prefixes) + len(self.shapes) > rows + 64

    def to_dict(self) -> dict[str, Any]:
        """Shares the row list: encode it before the queue changes again."""
        shapes = [list(shape) for shape in self.shapes]
        return {"prefixes": list(self.prefixes), "shapes": shapes, "base": self.base, "rows": self.packed}

    def to_json(self) -> dict[str, Any]:
        """`to_dict()` with the rows as an `orjson.Fragment` of their kept encodings: orjson writes exactly the
        bytes it would have written for the rows (compact, in order), without encoding them again."""
        if self.text is None:
            encoded = [orjson.dumps(row) for row in self.packed]
            self.sizes = [len(piece) for piece in encoded]
            self.text = bytearray(b",".join(encoded))
        rows = orjson.Fragment(b"[" + self.text + b"]")
        return {**self.to_dict(), "rows": rows}


def pack_rows(rows: list[list[Any]]) -> dict[str, Any]:
    """`rows` in the packed stored form (`PackedRows`)."""
    return PackedRows(rows).to_dict()


def unpack_rows(packed: Mapping[str, Any]) -> list[list[Any]]:
    prefixes, shapes, base = packed["prefixes"], packed["shapes"], packed["base"]
    return [
        [prefixes[prefix] + suffix, *shapes[shape][:2], base + offset, *shapes[shape][2:]]
        for prefix, suffix, shape, offset in packed["rows"]
    ]
