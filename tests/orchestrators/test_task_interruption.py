"""The task orchestrator acting on a restart ACI made by itself, which is how a Spot eviction shows.

Through the real Durable SDK, as in test_task.py.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from acibatch import durable_names as names
from acibatch.aci import GroupState
from tests.orchestrators.actions import activity, timer
from tests.orchestrators.conftest import TaskFactory
from tests.orchestrators.test_task import RESERVE_DELETE, Task, to_cleanup

pytestmark = pytest.mark.timeout(10)


def group_state(restart_count: int) -> GroupState:
    return GroupState(
        exists=True, provisioning_state="Succeeded", state="Running", container_state="Running",
        restart_count=restart_count, restart_policy="Never",
    )  # fmt: skip


def poll(t: Task, answer: GroupState) -> tuple[list[Any], Any]:
    """The poll timer fires and the group is read: the next actions, and the timer of a further poll."""
    t.h.timer_fired()
    assert t.h.run().keys == [activity(names.GET_GROUP_STATE)]
    t.h.activity_completed(names.GET_GROUP_STATE, answer.to_dict())
    polled_at = t.h.now
    return t.h.run().keys, timer(polled_at + timedelta(seconds=t.task.poll_seconds))


def test_a_restart_aci_made_by_itself_ends_a_spot_attempt_and_is_waited_out_on_regular(make_task: TaskFactory) -> None:
    spot = Task(make_task(priority="Spot"))
    spot.running()
    # Running as created: only the next poll is due (the callback waiter stays open).
    keys, next_poll = poll(spot, group_state(0))
    assert keys == [next_poll]
    # Restarted under restart policy Never without the attempt asking: the Spot attempt is given up, its group
    # deleted, for a Regular one.
    keys, _ = poll(spot, group_state(1))
    assert keys == [RESERVE_DELETE]
    assert spot.h.last is not None
    assert to_cleanup(spot, spot.h.last).new[0].input["delete"] is True

    regular = Task(make_task())
    regular.running()
    # On Regular priority there is nothing better to move to, and ACI has restarted it: keep watching.
    keys, next_poll = poll(regular, group_state(1))
    assert keys == [next_poll]


def test_a_container_that_cannot_start_is_restarted_in_place_then_watched_again(make_task: TaskFactory) -> None:
    t = Task(make_task())
    t.running()
    stuck = GroupState(
        exists=True, provisioning_state="Creating", state="Pending", container_state="Waiting",
        failure="Failed to pull image: TLS handshake timeout", restart_policy="Never",
    )  # fmt: skip
    keys, _ = poll(t, stuck)
    assert keys == [activity(names.RESTART_GROUP)]  # the policy's restart in place is carried out
    t.h.activity_completed(names.RESTART_GROUP, True)
    polled_at = t.h.now
    assert t.h.run().keys == [timer(polled_at + timedelta(seconds=t.task.poll_seconds))]
