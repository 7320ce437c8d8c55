"""The fair queue's shortcuts (id set, head-only reads, the packed form kept up to date) agree with the plain
reading of its rows after any sequence of operations, and cost no scan of the queue per operation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from acibatch.fairqueue import PackedRows, RequestQueue, unpack_rows
from acibatch.leases import LeaseRequest, row_spot

# One operation on a queue: ("add", job, spot, priority), ("remove", which of the rows, counted from the head),
# or ("copy",): carry on with a copy, as the capacity entity does for every operation.
OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.sampled_from("abc"), st.booleans(), st.sampled_from([0, 0, 0, 5])),
        st.tuples(st.just("remove"), st.integers(0, 40)),
        st.tuples(st.just("copy")),
    ),
    max_size=60,
)


def plain_heads(queue: RequestQueue) -> list[str]:
    first: dict[bool, str] = {}
    for row in queue.rows:
        first.setdefault(row_spot(row), row[0])
    return list(first.values())


@settings(max_examples=300, deadline=None)
@given(OPERATIONS)
def test_every_shortcut_agrees_with_the_rows_after_any_operations(operations: list[tuple[Any, ...]]) -> None:
    queue, made = RequestQueue("t"), 0
    for operation in operations:
        if operation[0] == "add":
            _, job, spot, priority = operation
            made += 1
            queue.append(LeaseRequest(f"task:t:{job}:{made}#1", "t", 1.0, 2.0, 1_800_000_000 + made, spot, priority))
        elif operation[0] == "remove" and queue.rows:
            queue.remove(queue.rows[operation[1] % len(queue.rows)][0])
        elif operation[0] == "copy":
            queue = queue.copy()
        if queue:
            assert unpack_rows(queue.stored()) == queue.rows  # the kept packed form is the rows
        assert [head.lease_id for head in queue.heads()] == plain_heads(queue)
        for index, row in enumerate(queue.rows):
            assert queue.position(row[0]) == index
            found = queue.find(row[0])
            assert found is not None and found.queue_row == row
        assert queue.find("task:t:z:0#1") is None and queue.position("task:t:z:0#1") == 0


def test_a_copy_is_independent_of_the_queue_it_came_from() -> None:
    queue = RequestQueue("t")
    for n in range(3):
        queue.append(LeaseRequest(f"task:t:j:{n}#1", "t", 1.0, 1.0, 1_800_000_000 + n))
    queue.stored()
    twin = queue.copy()
    twin.remove("task:t:j:0#1")
    twin.append(LeaseRequest("task:t:j:9#1", "t", 1.0, 1.0, 1_800_000_009))
    assert [row[0] for row in queue.rows] == ["task:t:j:0#1", "task:t:j:1#1", "task:t:j:2#1"]
    assert unpack_rows(queue.stored()) == queue.rows and unpack_rows(twin.stored()) == twin.rows


def test_the_packed_form_forgets_what_left_once_it_outnumbers_the_rows() -> None:
    queue = RequestQueue("t")
    for n in range(200):  # a prefix per job: 200 jobs of one waiting task each
        queue.append(LeaseRequest(f"task:t:job{n}:0#1", "t", 1.0, 1.0, 1_800_000_000 + n))
    queue.stored()
    for n in range(199):
        queue.remove(f"task:t:job{n}:0#1")
    assert len(queue.stored()["prefixes"]) == 1


class WatchedRows(list[list[Any]]):
    """A queue's row list that counts the times it is walked through."""

    walks = 0

    def __iter__(self) -> Iterator[list[Any]]:
        WatchedRows.walks += 1
        return super().__iter__()


def test_the_operations_of_a_grant_never_walk_the_queue() -> None:
    """Ten thousand waiting requests: a new request, the heads, a miss, taking the head and storing the queue do
    not read the rows one by one (before, each did, and a 10,000-task job's acquires took quadratic time)."""
    queue = RequestQueue("t", WatchedRows())
    for n in range(10_000):
        queue.append(LeaseRequest(f"task:t:j:{n}#1", "t", 1.0, 1.0, 1_800_000_000 + n))
    queue.stored()
    WatchedRows.walks = 0
    queue.append(LeaseRequest("task:t:j:new#1", "t", 1.0, 1.0, 1_800_000_100))
    assert queue.position("task:t:j:new#1") == 10_000
    assert [head.lease_id for head in queue.heads()] == ["task:t:j:0#1"]
    assert queue.find("task:t:j:absent#1") is None
    queue.remove("task:t:j:0#1")
    assert unpack_rows(queue.stored())[0][0] == "task:t:j:1#1"
    assert WatchedRows.walks == 0


def test_packed_rows_of_nothing_store_nothing() -> None:
    assert PackedRows([]).to_dict()["rows"] == []
