"""The reclaim orchestrator through the real Durable SDK: every stale lease goes through the capacity entity's
`release` in one batch, and only the waiters granted to live owners are woken."""

from __future__ import annotations

from typing import Any

import pytest

from acibatch import durable_names as names
from acibatch.reconcile import OwnerStatus, stale_leases
from acibatch.tenancy import CapacityState, LeaseRequest, Quota, acquire, release, set_tenant_quota
from tests.orchestrators.actions import activity, call_entity
from tests.orchestrators.harness import START, Orchestration

pytestmark = pytest.mark.timeout(10)

CAPACITY = names.CAPACITY_ENTITY
DEAD, QUEUED_DEAD, WAITER = "task:team-a:j1:1", "task:team-a:j1:2", "task:team-a:j2:1"


def leaked_state() -> CapacityState:
    """One group for team-a, held by a terminated task; behind it a terminated task's request and a live waiter."""
    state, _ = set_tenant_quota(CapacityState.empty(5, 5), "team-a", Quota(1, 1, 4))
    old = START.timestamp() - 3600
    for lease_id in (f"{DEAD}#1", f"{QUEUED_DEAD}#1", f"{WAITER}#1"):
        state, _ = acquire(state, LeaseRequest(lease_id, "team-a", 1, 1, old))
    return state


def test_reclaim_releases_each_stale_lease_and_wakes_the_granted_waiter() -> None:
    state = leaked_state()
    statuses = {
        DEAD: OwnerStatus("Terminated"),
        QUEUED_DEAD: OwnerStatus("Terminated"),
        WAITER: OwnerStatus("Running", 1),
    }
    stale = [found.to_dict() for found in stale_leases(state, statuses, START.timestamp(), 600)]
    h = Orchestration(names.RECLAIM_ORCHESTRATOR, stale, names.RECLAIM_INSTANCE)

    episode = h.run()
    assert episode.keys == [call_entity(CAPACITY, "release"), call_entity(CAPACITY, "release")]
    # Queued request first, so releasing the lease cannot hand the group to a dead owner.
    inputs = [scheduled.input for scheduled in episode.new]
    assert [item["leaseId"] for item in inputs] == [f"{QUEUED_DEAD}#1", f"{DEAD}#1"]
    assert all(item["now"] == pytest.approx(START.timestamp()) for item in inputs)

    # The entity answers as the real capacity logic does, in order.
    answers: list[dict[str, Any]] = []
    for item in inputs:
        state, result = release(state, item["leaseId"], item["now"])
        answers.append(result.to_dict())
    assert answers[1]["granted"][0]["leaseId"] == f"{WAITER}#1"
    for answer in answers:
        h.entity_answered(CAPACITY, "release", answer)

    episode = h.run()
    assert episode.keys == [activity(names.WAKE_WAITERS)]
    # The granted leases as the entity answered them (their create slots included), as a releasing task passes them.
    assert episode.new[0].input == answers[1]["granted"]
    h.activity_completed(names.WAKE_WAITERS, 1)

    episode = h.run()
    assert episode.is_done
    assert episode.output == {"released": [f"{DEAD}#1"], "withdrawn": [f"{QUEUED_DEAD}#1"], "granted": [f"{WAITER}#1"]}
    assert list(state.running) == [f"{WAITER}#1"] and not any(state.queues.values())


def test_a_lease_granted_and_then_reclaimed_in_the_same_run_wakes_nobody() -> None:
    h = Orchestration(
        names.RECLAIM_ORCHESTRATOR,
        [{"leaseId": "a#1", "reason": "OwnerTerminated"}, {"leaseId": "b#1", "reason": "OwnerTerminated"}],
        names.RECLAIM_INSTANCE,
    )
    h.run()
    h.entity_answered(CAPACITY, "release", {"granted": [{"leaseId": "b#1"}], "released": {"leaseId": "a#1"}})
    h.entity_answered(CAPACITY, "release", {"granted": [], "released": {"leaseId": "b#1"}})
    episode = h.run()
    assert episode.is_done and episode.keys == []
    assert episode.output == {"released": ["a#1", "b#1"], "withdrawn": [], "granted": []}


def test_nothing_to_reclaim_ends_at_once() -> None:
    episode = Orchestration(names.RECLAIM_ORCHESTRATOR, [], names.RECLAIM_INSTANCE).run()
    assert episode.is_done and episode.keys == []


def test_a_failed_wake_up_still_ends_the_reclaim_normally() -> None:
    h = Orchestration(
        names.RECLAIM_ORCHESTRATOR, [{"leaseId": "a#1", "reason": "OwnerUnknown"}], names.RECLAIM_INSTANCE
    )
    h.run()
    h.entity_answered(CAPACITY, "release", {"granted": [{"leaseId": "w#1"}], "released": {"leaseId": "a#1"}})
    assert h.run().keys == [activity(names.WAKE_WAITERS)]
    h.activity_failed(names.WAKE_WAITERS, "the host is restarting")
    episode = h.run()
    assert episode.is_done and episode.error is None
    assert episode.output == {"released": ["a#1"], "withdrawn": [], "granted": ["w#1"]}
