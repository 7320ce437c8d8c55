"""jobPriority in the capacity queue: higher first within a tenant, FIFO among equals, fair share across tenants."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from acibatch.tenancy import AcquireStatus, CapacityState, LeaseRequest, Quota, acquire, release, set_tenant_quota


def busy_region(**quotas: Quota) -> CapacityState:
    state = CapacityState.empty(1, 1)
    for tenant, quota in quotas.items():
        state, _ = set_tenant_quota(state, tenant, quota)
    return state


def test_a_higher_priority_job_goes_first_within_its_tenant_and_fifo_among_equals() -> None:
    state = busy_region(a=Quota(4, 4, 4, 1))
    state, first = acquire(state, LeaseRequest("running", "a", 1, 1, 0))
    assert first.status is AcquireStatus.GRANTED
    waiting = [("low", 1, -5), ("normal1", 2, 0), ("high1", 3, 100), ("normal2", 4, 0), ("high2", 5, 100)]
    for lease, at, priority in waiting:
        state, answer = acquire(state, LeaseRequest(lease, "a", 1, 1, at, priority=priority))
        assert answer.status is AcquireStatus.QUEUED
    order = []
    current = "running"
    for now in range(10, 15):
        state, released = release(state, current, now)
        (current,) = [lease.lease_id for lease in released.granted]
        order.append(current)
    assert order == ["high1", "high2", "normal1", "normal2", "low"]


def test_the_compact_stored_queue_keeps_priority_and_spot() -> None:
    state = busy_region(a=Quota(4, 4, 4, 1))
    state, _ = acquire(state, LeaseRequest("running", "a", 1, 1, 0))
    state, _ = acquire(state, LeaseRequest("p", "a", 1, 1, 1, spot=True, priority=7))
    state, _ = acquire(state, LeaseRequest("q", "a", 1, 1, 2))
    loaded = CapacityState.from_dict(state.to_dict())
    assert [(r.lease_id, r.spot, r.priority) for r in loaded.queues["a"]] == [("p", True, 7), ("q", False, 0)]
    assert loaded.to_dict() == state.to_dict()


def test_priority_never_moves_one_tenant_ahead_of_another() -> None:
    # Both tenants wait; b has nothing running (lowest share) so it is served first even against a's priority 1000.
    state = CapacityState.empty(2, 2)
    for tenant in ("a", "b"):
        state, _ = set_tenant_quota(state, tenant, Quota(4, 4, 4, 1))
    state, _ = acquire(state, LeaseRequest("running", "a", 1, 1, 0))
    state, _ = acquire(state, LeaseRequest("other", "a", 1, 1, 0))
    state, _ = acquire(state, LeaseRequest("urgent", "a", 1, 1, 1, priority=1000))
    state, _ = acquire(state, LeaseRequest("plain", "b", 1, 1, 2))
    state, released = release(state, "running", 10)
    assert [lease.lease_id for lease in released.granted] == ["plain"]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(-3, 3), min_size=1, max_size=20))
def test_grants_follow_priority_then_arrival(priorities: list[int]) -> None:
    state = busy_region(a=Quota(4, 4, 4, 1))
    state, _ = acquire(state, LeaseRequest("running", "a", 1, 1, 0))
    for index, priority in enumerate(priorities):
        state, _ = acquire(state, LeaseRequest(f"r{index}", "a", 1, 1, index + 1, priority=priority))
    granted, current = [], "running"
    for now in range(len(priorities)):
        state, released = release(state, current, 100 + now)
        current = released.granted[0].lease_id
        granted.append(int(current[1:]))
    assert granted == sorted(range(len(priorities)), key=lambda index: (-priorities[index], index))
