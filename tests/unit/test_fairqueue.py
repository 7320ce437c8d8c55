"""The fair queue's shortcuts (id set, head-only reads, the packed form kept up to date) agree with the plain
reading of its rows after any sequence of operations, and cost no scan of the queue per operation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
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
            # What the entity writes from the kept encodings is, byte for byte, the packed form's JSON.
            assert orjson.dumps(queue.stored_json()) == orjson.dumps(queue.stored())
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


def test_the_capacity_entity_stores_exactly_its_states_json() -> None:
    from acibatch import tenancy
    from acibatch.leases import Quota

    state = tenancy.CapacityState.empty(max_groups=2, max_cores=2)
    state, _ = tenancy.set_tenant_quota(state, "t", Quota(2, 2, 4))
    for n in range(6):
        request = LeaseRequest(f"task:t:j:{n}#1", "t", 1.0, 1.0, 1_800_000_000 + n, n == 4, 5 if n == 5 else 0)
        state, _ = tenancy.acquire(state, request)
    state, _ = tenancy.release(state, "task:t:j:0#1", 1_800_000_100)
    assert len(state.queues["t"]) == 3 and len(state.running) == 2
    assert orjson.dumps(state.stored_json()) == orjson.dumps(state.to_dict())


# Adversarial edits for the kept stored text: ids and tenants JSON must escape, re-added ids, several edits between
# stores, and copies whose originals are used again (a review's sequences, kept as a regression test).
AWKWARD_NAMES = st.sampled_from(["a", 'b"q', "c\\d", "é", "☃", "\n\t", "\x00", "x:y", "𝄞", "", "u\u2028"])
AWKWARD_TENANTS = st.sampled_from(["t", 't"x', "t\\", "ü"])
EDITS = st.lists(
    st.one_of(
        st.tuples(
            st.just("add"),
            AWKWARD_NAMES,
            st.integers(0, 6),
            st.booleans(),
            st.sampled_from([0, 3, -1]),
            st.integers(-5000, 5000),
            st.sampled_from([1.0, 0.5, 2.25, 1e-7]),
        ),
        st.tuples(st.just("remove"), st.integers(0, 400)),
        st.tuples(st.just("remove_id"), AWKWARD_NAMES, st.integers(0, 6)),
        st.tuples(st.just("copy"), st.booleans()),
        st.tuples(st.just("store")),
    ),
    max_size=120,
)


def stored_matches_rows(queue: RequestQueue) -> None:
    if queue.rows:
        text = orjson.dumps(queue.stored_json())
        assert text == orjson.dumps(queue.stored())
        assert unpack_rows(orjson.loads(text)) == queue.rows


@settings(max_examples=300, deadline=None)
@given(AWKWARD_TENANTS, EDITS)
def test_the_kept_text_survives_awkward_ids_and_reused_originals(tenant: str, edits: list[tuple[Any, ...]]) -> None:
    queue = RequestQueue(tenant)
    originals: list[tuple[RequestQueue, list[list[Any]]]] = []
    for edit in edits:
        if edit[0] == "add":
            _, name, number, spot, priority, offset, cores = edit
            lease = f"task:{tenant}:{name}:{number}#1"
            if queue.find(lease) is None:
                queue.append(LeaseRequest(lease, tenant, cores, 2.0, 1_800_000_000 + offset / 1000, spot, priority))
        elif edit[0] == "remove" and queue.rows:
            queue.remove(queue.rows[edit[1] % len(queue.rows)][0])
        elif edit[0] == "remove_id":
            queue.remove(f"task:{tenant}:{edit[1]}:{edit[2]}#1")
        elif edit[0] == "copy":
            original, rows = queue, [list(row) for row in queue.rows]
            queue = queue.copy()
            if edit[1]:
                originals.append((original, rows))
        elif edit[0] == "store":
            stored_matches_rows(queue)
        assert len({row[0] for row in queue.rows}) == len(queue.rows)
    stored_matches_rows(queue)
    for original, rows in originals:  # an original used again is still right: it rebuilds what it gave away
        assert [list(row) for row in original.rows] == rows
        stored_matches_rows(original)
        assert all(original.position(row[0]) == index for index, row in enumerate(original.rows))
