"""Bounded histories: a long task continues as new, carrying what it must, through the real Durable SDK.

A task polled 2,000 times never has more than HISTORY_BOUND events in one generation's history, and what a
generation carries (the attempt, its deadline, the callbacks already heard) still decides correctly after many
switches; a task that ends continues once more so the chunk receives only its outcome.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from azure.durable_functions.models.actions.ActionType import ActionType

from acibatch import durable_names as names
from acibatch.aci import GroupState
from acibatch.checkpoint import WAITS_PER_GENERATION
from acibatch.tenancy import AcquireStatus
from tests.orchestrators.actions import activity, activity_with_retry, call_entity, continue_as_new
from tests.orchestrators.conftest import TaskFactory
from tests.orchestrators.test_task import CALLBACK, PROGRESS, RESERVE_DELETE, Task, final, report, to_cleanup

pytestmark = pytest.mark.timeout(60)

RUNNING = GroupState(exists=True, provisioning_state="Succeeded", state="Running", container_state="Running")
# The README's bound: a generation holds WAITS_PER_GENERATION polls of at most 8 events each (timer created and
# fired, activity scheduled and completed, two episode markers, a callback) plus the generation's opening.
HISTORY_BOUND = 8 * WAITS_PER_GENERATION + 20


def poll_once(t: Task) -> list[Any]:
    """The poll timer fires, the group is read as running; returns the keys of the episode after the read."""
    t.h.timer_fired()
    assert t.h.run().keys == [activity(names.GET_GROUP_STATE)]
    t.h.activity_completed(names.GET_GROUP_STATE, RUNNING.to_dict())
    return t.h.run().keys


def next_generation(t: Task, *, cancelled: bool = False) -> list[Any]:
    """Start the continued generation: it first reads the job's cancel mark (events may be lost at the switch)."""
    t.h.next_generation()
    assert t.h.run().keys == [call_entity(PROGRESS, "cancelled")]
    t.h.entity_answered(PROGRESS, "cancelled", {"cancelled": cancelled})
    return t.h.run().keys


def poll_for_long(t: Task, polls: int) -> tuple[int, int]:
    """Poll a running task `polls` times, following it across generations; returns (longest history,
    generations)."""
    longest, generations = 0, 1
    for _ in range(polls):
        keys = poll_once(t)
        longest = max(longest, len(t.h.history))
        if keys == [continue_as_new()]:
            assert t.h.last is not None
            carried = t.h.last.continued_with["resume"]
            assert (carried["phase"], carried["attempt"], carried["generation"]) == ("watch", 1, generations + 1)
            generations += 1
            next_generation(t)
    return longest, generations


def end_by_callback(t: Task, result: Any) -> dict[str, Any]:
    t.h.event(CALLBACK, report("succeeded", 1, exitCode=0, result=result))
    to_cleanup(t, t.h.run())
    t.h.activity_completed(names.CLEANUP_GROUP, {"logTail": "", "exitCode": 0, "existed": True})
    t.h.run()
    return final(t.released(t.lease(1)))


def test_a_long_task_keeps_every_history_under_the_bound(make_task: TaskFactory) -> None:
    # Every generation after the first has the same shape, so three of them show the bound; the `long` test
    # runs 2,000 polls.
    t = Task(make_task(taskTimeoutSeconds=7 * 24 * 3600))
    t.running()
    longest, generations = poll_for_long(t, 3 * WAITS_PER_GENERATION)
    assert longest <= HISTORY_BOUND and generations == 4
    done = end_by_callback(t, {"ok": True})
    assert (done["state"], done["result"], done["attempts"]) == ("Succeeded", {"ok": True}, 1)


@pytest.mark.long
@pytest.mark.timeout(600)
def test_a_task_polled_2000_times_keeps_every_history_under_the_bound(make_task: TaskFactory) -> None:
    t = Task(make_task(taskTimeoutSeconds=7 * 24 * 3600))
    t.running()
    longest, generations = poll_for_long(t, 2000)
    assert longest <= HISTORY_BOUND and generations > 2000 // WAITS_PER_GENERATION
    assert end_by_callback(t, None)["state"] == "Succeeded"


def test_the_deadline_and_a_callback_already_heard_survive_the_switch(make_task: TaskFactory) -> None:
    # Polled every minute (BATCH_POLL_SECONDS=60): the hour's deadline comes some 20 polls after the switch.
    t = Task(replace(make_task(taskTimeoutSeconds=3600), poll_seconds=60.0))
    t.running()
    progress = report("progress", 1, progress={"step": 1})
    t.h.event(CALLBACK, progress)
    t.h.run()  # heard: the waiter is renewed, the poll timer still runs
    while poll_once(t) != [continue_as_new()]:
        pass
    assert t.h.last is not None
    resume = t.h.last.continued_with["resume"]
    assert resume["deadline"] is not None and len(resume["handled"]) == 1
    next_generation(t)
    # The same progress report delivered again (a retried callback) changes nothing in the new generation: the
    # task goes on polling (a fresh poll timer, as after a repeat in any generation) and publishes nothing new.
    t.h.event(CALLBACK, progress)
    assert [key[0] for key in t.h.run().keys] == [ActionType.CREATE_TIMER]
    # The carried deadline still ends the attempt: past it, the task is stopped and fails by policy.
    deadline = t.h.now + timedelta(hours=1)
    while t.h.now < deadline:
        keys = poll_once(t)
        if keys == [continue_as_new()]:
            next_generation(t)
        elif keys == [RESERVE_DELETE]:
            to_cleanup(t, t.h.last)
            break
    assert t.h.last is not None and t.h.last.new[0].input["stop"] is True  # a timed-out attempt is stopped first


def test_a_cancel_marked_while_the_task_switched_generations_still_cancels_it(make_task: TaskFactory) -> None:
    t = Task(make_task())
    t.running()
    while poll_once(t) != [continue_as_new()]:
        pass
    # The job's Cancel event was raised as the generation ended and did not reach the next one; its mark did.
    assert next_generation(t, cancelled=True) == [RESERVE_DELETE]
    assert t.h.last is not None
    to_cleanup(t, t.h.last)
    assert t.h.last is not None and t.h.last.new[0].input["stop"] is True


def test_a_queued_task_continues_as_new_too_and_asks_again_for_the_same_lease(make_task: TaskFactory) -> None:
    t = Task(make_task())
    t.admitted(AcquireStatus.QUEUED)
    for _ in range(WAITS_PER_GENERATION - 1):
        t.h.timer_fired()
        assert t.h.run().keys == [call_entity(names.CAPACITY_ENTITY, "acquire")]
        t.h.entity_answered(names.CAPACITY_ENTITY, "acquire", {"status": "QUEUED", "reason": "tenant quota"})
        keys = t.h.run().keys
    assert keys == [continue_as_new()]
    assert t.h.last is not None
    assert t.h.last.continued_with["resume"]["record"]["pendingReason"] == "tenant quota"
    assert next_generation(t) == [call_entity(names.CAPACITY_ENTITY, "acquire")]
    assert t.h.last is not None and t.h.last.new[0].input["leaseId"] == t.lease(1)


def test_the_last_generation_hands_the_chunk_only_the_outcome(make_task: TaskFactory) -> None:
    t = Task(make_task())
    t.running()
    t.h.event(CALLBACK, report("succeeded", 1, exitCode=0, result={"big": "x" * 5000}))
    to_cleanup(t, t.h.run())
    t.h.activity_completed(names.CLEANUP_GROUP, {"logTail": "y" * 9000, "exitCode": 0, "existed": True})
    t.h.run()
    done = t.released(t.lease(1))
    record = final(done)
    t.h.next_generation()
    last = t.h.run()
    assert last.is_done and last.keys == []
    assert last.output == {"id": record["id"], "state": "Succeeded"}
    assert last.custom_status["state"] == "Succeeded" and "logTail" not in last.custom_status


def test_a_stale_wake_up_while_the_group_runs_does_not_stop_the_task_continuing_as_new(
    make_task: TaskFactory,
) -> None:
    t = Task(make_task())
    t.admitted(AcquireStatus.QUEUED)
    # The back-off timer fires first: the task asks again and is granted; the wake-up comes only afterwards.
    t.h.timer_fired()
    assert t.h.run().keys == [call_entity(names.CAPACITY_ENTITY, "acquire")]
    t.h.entity_answered(names.CAPACITY_ENTITY, "acquire", {"status": "GRANTED", "createAt": 0})
    assert t.h.run().keys == [activity(names.CREATE_GROUP)]
    t.h.event(names.EVENT_CAPACITY_GRANTED, {"leases": [t.lease(1)], "createAt": {}})
    assert t.h.run().keys == []
    t.created(cancel_waiter_open=True)
    _, generations = poll_for_long(t, WAITS_PER_GENERATION + 5)
    assert generations == 2  # the stale wake-up is not a reason to keep this generation growing


def test_a_callback_kept_while_the_create_ran_is_heard_before_any_switch(make_task: TaskFactory) -> None:
    t = Task(make_task())
    t.admitted(AcquireStatus.GRANTED)
    quota = {"ok": False, "error": {"status": 400, "code": "ContainerGroupQuotaReached", "message": "full"}}
    for _ in range(WAITS_PER_GENERATION - 1):  # quota waits: each one wait, never a failure
        t.h.activity_completed(names.CREATE_GROUP, quota)
        to_cleanup(t, t.h.run())
        t.h.activity_completed(names.CLEANUP_GROUP, {})
        assert t.h.run().keys == [call_entity(names.CAPACITY_ENTITY, "reserve_create")]
        t.h.entity_answered(names.CAPACITY_ENTITY, "reserve_create", {"createAt": 0})
        t.h.run()
        t.h.timer_fired()
        assert t.h.run().keys == [activity(names.CREATE_GROUP)]
    # This create works, and its container calls back with its result before the create activity's answer.
    t.h.event(CALLBACK, report("succeeded", 1, exitCode=0, result={"kept": True}))
    assert t.h.run().keys == []
    t.h.activity_completed(names.CREATE_GROUP, {"ok": True})
    # The generation's 40th wait comes now, but the SDK may hold a callback: the task races for it first.
    racing = t.h.run()
    assert continue_as_new() not in racing.keys and racing.keys[-1:] == [RESERVE_DELETE], racing.keys
    to_cleanup(t, racing)
    t.h.activity_completed(names.CLEANUP_GROUP, {"exitCode": 0})
    t.h.run()
    assert final(t.released(t.lease(1)))["result"] == {"kept": True}


def test_a_resumed_generation_that_fails_cleans_up_its_group_and_releases_its_lease(make_task: TaskFactory) -> None:
    t = Task(make_task())
    t.running()
    while poll_once(t) != [continue_as_new()]:
        pass
    t.h.next_generation()
    assert t.h.run().keys == [call_entity(PROGRESS, "cancelled")]
    t.h.entity_answered(PROGRESS, "cancelled", None, error=True)  # the entity call fails
    cleaning = t.h.run()
    assert cleaning.keys == [activity_with_retry(names.CLEANUP_GROUP)]
    assert cleaning.new[0].input == {"name": t.group(1), "stop": True, "delete": True}
    t.h.activity_completed(names.CLEANUP_GROUP, {})
    assert t.h.run().keys == [call_entity(names.CAPACITY_ENTITY, "release")]
    done = final(t.released(t.lease(1)))
    assert done["state"] == "Failed" and done["error"].startswith("the task failed: ")
