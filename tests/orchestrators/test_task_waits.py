"""The task orchestrator's waits through the real Durable SDK: an hour-long task timeout (played in
milliseconds by the fake world of driver.py), the create back-offs ARM and ACI ask for (throttling, quota,
capacity), and the fall back from Spot to Regular, at admission and at create.

Like test_task.py these assert the exact next actions and the final record, never the custom status."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from acibatch import durable_names as names
from acibatch.aci import ArmError, GroupState
from acibatch.plan import TaskInput
from acibatch.tenancy import AcquireResult, AcquireStatus, LeaseRequest, ReleaseResult
from tests.orchestrators.actions import (
    Episode,
    Scheduled,
    activity,
    activity_with_retry,
    call_entity,
    continue_as_new,
    signal_entity,
    timer,
    wait_for,
)
from tests.orchestrators.conftest import TENANT, TaskFactory
from tests.orchestrators.driver import Driver
from tests.orchestrators.test_task import CANCEL, CAPACITY, PROGRESS, RESERVE_DELETE, TENANT_ENTITY, Task, final

pytestmark = pytest.mark.timeout(10)

RUNNING = GroupState(exists=True, provisioning_state="Succeeded", state="Running", container_state="Running")
THROTTLED = ArmError(429, "TooManyRequests", "The request is being throttled.", retry_after=17)
QUOTA = ArmError(
    409,
    "ContainerGroupQuotaReached",
    "Resource type 'Microsoft.ContainerInstance/containerGroups' container group quota 'StandardCores' exceeded in "
    "region 'westeurope'. Limit: '10', Usage: '10' Requested: '1'.",
)
# ACI's answer for no room in the location; for a region without Spot it is the same and does not say Spot.
NO_CAPACITY = ArmError(
    409,
    "ServiceUnavailable",
    "The requested resource is not available in the location 'westeurope' at this moment. Please retry with a "
    "different resource request or in another location.",
)


def released(scheduled: Scheduled) -> dict[str, Any]:
    """The capacity entity's answer to a release: nobody waiting, the lease it gave back."""
    lease = {**LeaseRequest(scheduled.input["leaseId"], TENANT, 1.0, 1.5, 0.0).to_dict(), "startedAt": 0.0}
    return {**ReleaseResult([], None).to_dict(), "released": lease}


def quiet_world(t: Task, **activities: Any) -> Driver:
    """A world where every call succeeds at once and the group runs until told otherwise."""
    return Driver(
        t.h,
        activities={
            names.CREATE_GROUP: {"ok": True},
            names.GET_GROUP_STATE: RUNNING.to_dict(),
            names.CLEANUP_GROUP: {},
            **activities,
        },
        entities={
            (PROGRESS, "begin"): {"cancelled": False},
            (PROGRESS, "cancelled"): {"cancelled": False},
            (CAPACITY, "acquire"): AcquireResult(AcquireStatus.GRANTED).to_dict(),
            (CAPACITY, "reserve_create"): lambda s: {"createAt": s.input["notBefore"]},
            (CAPACITY, "reserve_delete"): {"deleteAt": 0},
            (CAPACITY, "release"): released,
        },
    )


def ended(driver: Driver) -> dict[str, Any]:
    return final(driver.run_until(lambda episode: episode.continued_with is not None))


# -- timeouts ------------------------------------------------------------------------------------------------


def polled_every(seconds: float, task: TaskInput) -> TaskInput:
    """The task as BATCH_POLL_SECONDS=`seconds` plans it: fewer episodes per simulated hour."""
    return replace(task, poll_seconds=seconds)


def test_an_hour_long_task_timeout_stops_the_group_then_fails_the_task(make_task: TaskFactory) -> None:
    # Polled every minute: the hour crosses a generation (40 waits each), which must carry the deadline.
    t = Task(polled_every(60.0, make_task(taskTimeoutSeconds=3600, maxAttempts=1)))
    driver = quiet_world(t)
    created = driver.run_until(lambda episode: wait_for(CANCEL) in episode.keys)
    deadline = t.h.now - timedelta(seconds=1) + timedelta(seconds=3600)  # the harness's clock moved 1 s since

    stopping = driver.run_until(lambda episode: RESERVE_DELETE in episode.keys)
    # The poll that finds the deadline passed acts at once: a stop and delete, nothing else first.
    assert stopping.keys == [RESERVE_DELETE]
    assert deadline <= t.h.now < deadline + timedelta(seconds=t.task.poll_seconds + 2)
    polls = driver.calls_to(names.GET_GROUP_STATE)
    # One read per poll interval (the harness's clock also moves a second per episode), none more often.
    gaps = [(later.at - earlier.at).total_seconds() for earlier, later in itertools.pairwise(polls)]
    assert min(gaps) >= 60 and 3600 // 62 <= len(polls) < 3600 // 60
    assert driver.generations == 2
    cleaning = driver.step()
    assert cleaning.keys == [activity_with_retry(names.CLEANUP_GROUP)]
    assert cleaning.new[0].input == {"name": t.group(1), "stop": True, "delete": True, "exitCode": None}

    record = ended(driver)
    assert record["state"] == "Failed"
    assert record["error"] == "failed after 1 attempt(s): timed out: the task ran longer than taskTimeoutSeconds=3600"
    assert record["attempts"] == 1
    assert created.keys[0] == signal_entity(PROGRESS, "set")


def test_a_timed_out_attempt_with_attempts_left_is_tried_again_with_a_new_deadline(make_task: TaskFactory) -> None:
    t = Task(polled_every(300.0, make_task(taskTimeoutSeconds=3600, maxAttempts=2)))
    driver = quiet_world(t)
    driver.run_until(lambda episode: RESERVE_DELETE in episode.keys)
    first_timeout = t.h.now
    again = driver.run_until(lambda episode: activity(names.CREATE_GROUP) in episode.keys)
    assert again.new[-1].input["attempt"] == 2
    driver.run_until(lambda episode: RESERVE_DELETE in episode.keys)
    # The second attempt had its own hour, counted from its own create.
    assert t.h.now - first_timeout >= timedelta(seconds=3600)
    record = ended(driver)
    assert (record["state"], record["attempts"]) == ("Failed", 2)


# -- create back-offs ------------------------------------------------------------------------------------------


def refused_create(t: Task, error: ArmError) -> tuple[Episode, float]:
    """The create fails with `error`: the half-made group is deleted, then a new create slot is asked for.
    Returns the episode asking and the slot's earliest time it asked for."""
    t.h.activity_completed(names.CREATE_GROUP, {"ok": False, "error": error.to_dict()})
    assert t.h.run().keys == [RESERVE_DELETE]
    t.h.entity_answered(CAPACITY, "reserve_delete", {"deleteAt": 0})
    deleting = t.h.run()
    assert deleting.keys == [activity_with_retry(names.CLEANUP_GROUP)]
    assert deleting.new[0].input == {"name": t.group(1), "stop": False, "delete": True}
    t.h.activity_completed(names.CLEANUP_GROUP, {})
    reserving = t.h.run()
    assert reserving.keys == [call_entity(CAPACITY, "reserve_create")]
    asked = reserving.new[0].input
    assert asked["leaseId"] == t.lease(1)
    return reserving, float(asked["notBefore"]) - float(asked["now"])


def test_a_throttled_create_waits_arms_retry_after_and_a_later_slot_then_creates_the_same_group(
    make_task: TaskFactory,
) -> None:
    t = Task(make_task())
    first = t.admitted(AcquireStatus.GRANTED).new[0].input
    reserving, delay = refused_create(t, THROTTLED)
    assert delay == 17.0  # ARM's Retry-After, exactly
    assert reserving.new[0].input["throttled"] is True  # every task's next create moves too
    # The entity gives a later slot (others were throttled as well): the task sleeps until that one.
    slot = reserving.new[0].input["notBefore"] + 3.0
    t.h.entity_answered(CAPACITY, "reserve_create", {"createAt": slot})
    sleeping = t.h.run()
    assert sleeping.keys == [timer(datetime.fromtimestamp(slot, UTC)), wait_for(CANCEL)]
    t.h.timer_fired(sleeping.new[0])
    again = t.h.run()
    assert again.keys == [activity(names.CREATE_GROUP)]
    assert again.new[0].input == first  # the same attempt: same group, attempt number and creation time
    t.created(cancel_waiter_open=True)
    t.h.event(names.EVENT_CALLBACK, {"status": "succeeded", "attempt": 1, "exitCode": 0})
    record = ended(quiet_world(t))
    # A wait is not an error: the task succeeded on its first attempt with nothing to explain.
    assert (record["state"], record["attempts"], record["error"]) == ("Succeeded", 1, None)


@pytest.mark.parametrize(
    ("error", "base"),
    [(QUOTA, 15.0), (NO_CAPACITY, 5.0)],
    ids=["quota", "capacity"],
)
def test_quota_and_capacity_waits_back_off_and_never_fail_the_task(
    make_task: TaskFactory, error: ArmError, base: float
) -> None:
    t = Task(make_task())
    t.admitted(AcquireStatus.GRANTED)
    reserving, delay = refused_create(t, error)
    assert reserving.new[0].input["throttled"] is False
    assert base <= delay <= base * 1.25  # the first back-off, with up to 25% jitter

    # Refused far more often than a transient error may be (8 times) before ACI has room: the task keeps
    # waiting, each wait about twice the last up to the cap, and runs its first attempt in the end.
    refusals = 10
    answers = iter([{"ok": False, "error": error.to_dict()}] * (refusals - 1) + [{"ok": True}])
    driver = quiet_world(t, **{names.CREATE_GROUP: lambda _: next(answers)})
    driver.run_until(lambda episode: wait_for(names.EVENT_CALLBACK) in episode.keys)
    creates = [call.at for call in driver.calls_to(names.CREATE_GROUP)]
    gaps = [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(creates)]
    assert len(creates) == refusals
    assert all(gap >= earlier_gap for earlier_gap, gap in itertools.pairwise(gaps) if earlier_gap < 150)
    assert max(gaps) <= 300 * 1.25 + 5  # the cap, with jitter and the cleanup's own episodes
    t.h.event(names.EVENT_CALLBACK, {"status": "succeeded", "attempt": 1, "exitCode": 0})
    record = ended(driver)
    assert (record["state"], record["attempts"], record["error"]) == ("Succeeded", 1, None)


def test_arm_throttling_does_not_lengthen_the_next_capacity_back_off(make_task: TaskFactory) -> None:
    # Throttling says when to come back (Retry-After), nothing about the region's room: three throttled creates
    # before a capacity refusal leave that refusal's back-off at its first step (5 s), not 5 s x 2^3.
    t = Task(make_task())
    t.admitted(AcquireStatus.GRANTED)
    refusals = [THROTTLED] * 3 + [NO_CAPACITY]
    answers = iter([{"ok": False, "error": error.to_dict()} for error in refusals] + [{"ok": True}])
    driver = quiet_world(t, **{names.CREATE_GROUP: lambda _: next(answers)})
    driver.run_until(lambda episode: wait_for(names.EVENT_CALLBACK) in episode.keys)
    creates = [call.at for call in driver.calls_to(names.CREATE_GROUP)]
    gaps = [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(creates)]
    assert len(creates) == 5
    assert all(gap >= 17.0 for gap in gaps[:3])  # each throttle waits ARM's Retry-After
    assert 5.0 <= gaps[3] <= 5.0 * 1.25 + 5  # the first step, with jitter and the cleanup's own episodes


def test_a_task_deep_in_the_queue_asks_again_later_the_more_turns_are_ahead(make_task: TaskFactory) -> None:
    # The capacity entity says 4 turns of the tenant's leases come first: the timer that heals a lost wake-up
    # waits 4 first waits (120 s) rather than 30 s, backs off from there, and stops at the cap.
    t = Task(make_task())
    t.h.entity_answered(PROGRESS, "begin", {"cancelled": False})
    deep = AcquireResult(AcquireStatus.QUEUED, "fair queue", rounds=4).to_dict()
    for expected in (120, 240, 300):
        t.h.entity_answered(CAPACITY, "acquire", deep)
        asked_at = t.h.now
        waiting = t.h.run()
        assert waiting.keys[-1] == timer(asked_at + timedelta(seconds=expected))
        t.h.timer_fired()
        assert t.h.run().keys == [call_entity(CAPACITY, "acquire")]  # asks again when the timer fires


def test_an_answer_recorded_without_turns_keeps_the_first_wait_of_30_seconds(make_task: TaskFactory) -> None:
    # A history recorded before the capacity entity counted turns replays with the waits it had.
    t = Task(make_task())
    t.h.entity_answered(PROGRESS, "begin", {"cancelled": False})
    t.h.entity_answered(CAPACITY, "acquire", {"status": "QUEUED", "reason": "fair queue", "createAt": None})
    started = t.h.now
    assert t.h.run().keys[-1] == timer(started + timedelta(seconds=30))


# -- Spot ------------------------------------------------------------------------------------------------------


def test_spot_the_region_cannot_grant_falls_back_to_regular_at_once(make_task: TaskFactory) -> None:
    t = Task(make_task(priority="Spot"))
    refused = AcquireResult(AcquireStatus.REJECTED, "the region has no Spot cores (ACI_MAX_SPOT_CORES=0)")
    t.h.entity_answered(PROGRESS, "begin", {"cancelled": False})
    t.h.entity_answered(CAPACITY, "acquire", refused.to_dict())
    asking = t.h.run()
    # The same lease asked for again, now for Regular cores, with no wait in between.
    assert asking.keys == [call_entity(CAPACITY, "acquire")]
    assert (asking.new[0].input["leaseId"], asking.new[0].input["spot"]) == (t.lease(1), False)
    t.h.entity_answered(CAPACITY, "acquire", AcquireResult(AcquireStatus.GRANTED).to_dict())
    creating = t.h.run()
    assert creating.keys == [activity(names.CREATE_GROUP)]
    assert creating.new[0].input["priority"] == "Regular"
    t.created()
    t.h.event(names.EVENT_CALLBACK, {"status": "succeeded", "attempt": 1, "exitCode": 0})
    record = ended(quiet_world(t))
    assert (record["state"], record["attempts"]) == ("Succeeded", 1)
    assert "falling back to Regular" in record["error"]  # kept to say why it ran on Regular


def test_spot_without_fallback_that_the_region_cannot_grant_fails_at_once(make_task: TaskFactory) -> None:
    t = Task(make_task(priority="Spot", spotFallback=False))
    t.h.entity_answered(PROGRESS, "begin", {"cancelled": False})
    t.h.entity_answered(CAPACITY, "acquire", AcquireResult(AcquireStatus.REJECTED, "no Spot cores").to_dict())
    done = t.h.run()
    # Nothing was granted, so nothing is released: the task ends.
    assert done.keys == [
        signal_entity(PROGRESS, "set"),
        signal_entity(TENANT_ENTITY, "task_finished"),
        continue_as_new(),
    ]
    record = final(done)
    assert (record["state"], record["error"]) == ("Failed", "the task can never be scheduled: no Spot cores")


def test_a_spot_create_refused_for_capacity_is_run_again_on_regular_as_a_platform_retry(
    make_task: TaskFactory,
) -> None:
    t = Task(make_task(priority="Spot", maxAttempts=1))
    assert t.admitted(AcquireStatus.GRANTED).new[0].input["priority"] == "Spot"
    t.h.activity_completed(names.CREATE_GROUP, {"ok": False, "error": NO_CAPACITY.to_dict()})
    # Not worth waiting for Spot here: the Spot group is deleted, its lease released, and a new attempt queued.
    assert t.h.run().keys == [RESERVE_DELETE]
    t.h.entity_answered(CAPACITY, "reserve_delete", {"deleteAt": 0})
    assert t.h.run().keys == [activity_with_retry(names.CLEANUP_GROUP)]
    t.h.activity_completed(names.CLEANUP_GROUP, {})
    assert t.h.run().keys == [call_entity(CAPACITY, "release")]
    requeued = t.released(t.lease(1))
    assert requeued.keys == [
        signal_entity(TENANT_ENTITY, "record_usage"),
        signal_entity(PROGRESS, "set"),
        call_entity(CAPACITY, "acquire"),
    ]
    asked = requeued.new[2].input
    assert (asked["leaseId"], asked["spot"]) == (t.lease(2), False)
    driver = quiet_world(t)
    creating = driver.run_until(lambda episode: activity(names.CREATE_GROUP) in episode.keys)
    assert (creating.new[-1].input["priority"], creating.new[-1].input["attempt"]) == ("Regular", 2)
    driver.run_until(lambda episode: wait_for(names.EVENT_CALLBACK) in episode.keys)
    t.h.event(names.EVENT_CALLBACK, {"status": "succeeded", "attempt": 2, "exitCode": 0})
    record = ended(driver)
    # maxAttempts=1, yet it ran twice: the fallback is the platform's retry, not the task's.
    assert (record["state"], record["attempts"], record["platformRetries"]) == ("Succeeded", 2, 1)
