"""The task orchestrator through the real Durable SDK: the exact next actions after a cancel while queued, a
stale attempt's callback, a repeated callback, and a transient ARM error at create.

These assert actions and outputs only, never the custom status, whose shape is the orchestrator's own
business (it is a summary for the status API)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from azure.durable_functions.models.actions.ActionType import ActionType

from acibatch import durable_names as names
from acibatch.aci import ArmError, GroupState
from acibatch.naming import container_group_name
from acibatch.plan import TaskInput
from acibatch.tenancy import AcquireResult, AcquireStatus, Lease, LeaseRequest, ReleaseResult
from orchestrators.task import CALLBACK_GRACE_SECONDS
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
from tests.orchestrators.harness import Orchestration

# A replay loop that never settles would spin inside the SDK; fail fast instead.
pytestmark = pytest.mark.timeout(10)

PROGRESS, CAPACITY, TENANT_ENTITY = names.PROGRESS_ENTITY, names.CAPACITY_ENTITY, names.TENANT_ENTITY
CALLBACK, CANCEL, GRANTED = names.EVENT_CALLBACK, names.EVENT_CANCEL, names.EVENT_CAPACITY_GRANTED
RUNNING = GroupState(exists=True, provisioning_state="Succeeded", state="Running", container_state="Running")


def report(status: str, attempt: int, **fields: Any) -> dict[str, Any]:
    """A callback as the API raises it (`CallbackReport.to_dict`), with the attempt its token was minted for."""
    return {
        "status": status,
        "attempt": attempt,
        "exitCode": None,
        "message": None,
        "progress": None,
        "result": None,
        **fields,
    }


RESERVE_DELETE = call_entity(CAPACITY, "reserve_delete")


def to_cleanup(t: Task, episode: Episode) -> Episode:
    """A decision that deletes the group first reserves a slot in ACI's delete windows; given at once here, the
    cleanup activity follows."""
    assert episode.keys[-1:] == [RESERVE_DELETE], episode.keys
    t.h.entity_answered(CAPACITY, "reserve_delete", {"deleteAt": 0})
    cleaning = t.h.run()
    assert cleaning.keys == [activity_with_retry(names.CLEANUP_GROUP)]
    return cleaning


def final(episode: Episode) -> dict[str, Any]:
    """The task's final record: a task ends by continuing as new into a last generation that holds it."""
    continued = episode.continued_with
    assert continued is not None and "final" in continued, f"the task did not end: {episode.keys}"
    return dict(continued["final"])


class Task:
    """A task orchestration, driven through its admission and attempts."""

    def __init__(self, task: TaskInput) -> None:
        self.task = task
        self.h = Orchestration(names.TASK_ORCHESTRATOR, task.to_dict(), task.instance_id)
        # Registering with the job and asking for the first lease go out together.
        assert self.h.run().keys == [call_entity(PROGRESS, "begin"), call_entity(CAPACITY, "acquire")]

    def poll_timer(self, at: datetime) -> tuple[Any, ...]:
        """The poll timer an episode starting `at` creates."""
        return timer(at + timedelta(seconds=self.task.poll_seconds))

    def lease(self, attempt: int) -> str:
        return f"{self.task.instance_id}#{attempt}"

    def group(self, attempt: int) -> str:
        return container_group_name(TENANT, self.task.job_id, self.task.task_id, attempt)

    def admitted(self, status: AcquireStatus) -> Episode:
        self.h.entity_answered(PROGRESS, "begin", {"cancelled": False})
        self.h.entity_answered(CAPACITY, "acquire", AcquireResult(status).to_dict())
        return self.h.run()

    def created(self, *, cancel_waiter_open: bool = False) -> Episode:
        """The create activity succeeded: the task reports Running and races a callback, a cancel (its waiter
        is created once per orchestration) and the poll timer."""
        now = self.h.now
        self.h.activity_completed(names.CREATE_GROUP, {"ok": True})
        episode = self.h.run()
        poll = self.poll_timer(now)
        waits = [wait_for(CALLBACK)] if cancel_waiter_open else [wait_for(CALLBACK), wait_for(CANCEL)]
        assert episode.keys == [signal_entity(PROGRESS, "set"), *waits, poll]
        assert episode.new[0].input == {"taskId": self.task.task_id, "state": "Running"}
        return episode

    def running(self) -> None:
        """Admitted at once and its first group created."""
        episode = self.admitted(AcquireStatus.GRANTED)
        assert episode.keys == [activity(names.CREATE_GROUP)]
        assert (episode.new[0].input["name"], episode.new[0].input["attempt"]) == (self.group(1), 1)
        self.created()

    def released(self, lease_id: str, granted: list[Lease] | None = None) -> Episode:
        lease = {**LeaseRequest(lease_id, TENANT, 1.0, 1.5, 0.0).to_dict(), "startedAt": 0.0}
        self.h.entity_answered(CAPACITY, "release", {**ReleaseResult(granted or [], None).to_dict(), "released": lease})
        return self.h.run()


def test_cancel_while_queued_releases_the_lease_and_wakes_the_next_waiter(make_task: TaskFactory) -> None:
    t = Task(make_task())
    queued_at = t.h.now
    waiting = t.admitted(AcquireStatus.QUEUED)
    # Waits for a wake-up, a cancel or the back-off timer (which only heals a lost wake-up, so it starts late).
    assert waiting.keys == [wait_for(GRANTED), wait_for(CANCEL), timer(queued_at + timedelta(seconds=30))]
    backoff = waiting.new[2]

    t.h.event(CANCEL, {"reason": "job"})
    releasing = t.h.run()
    assert releasing.keys == [call_entity(CAPACITY, "release")]
    assert releasing.new[0].input["leaseId"] == t.lease(1)
    assert t.h.cancelled(backoff)

    # The lease had been granted meanwhile: releasing it handed the capacity to another task, which is woken.
    other = Lease(LeaseRequest("task:team-b:j9:0#1", "team-b", 1.0, 1.5, 0.0), started_at=0.0)
    t.h.entity_answered(CAPACITY, "release", ReleaseResult([other], None).to_dict())
    waking = t.h.run()
    assert waking.keys == [activity(names.WAKE_WAITERS)]
    assert [lease["leaseId"] for lease in waking.new[0].input] == [other.lease_id]

    t.h.activity_completed(names.WAKE_WAITERS, 1)
    done = t.h.run()
    assert done.keys == [
        signal_entity(PROGRESS, "set"),
        signal_entity(TENANT_ENTITY, "task_finished"),
        continue_as_new(),
    ]
    assert done.new[1].input == {"outcome": "Cancelled"}
    assert (done.is_done, done.error) == (True, None)
    assert final(done)["state"] == "Cancelled"
    assert final(done)["error"] == "the job was cancelled while the task was queued"
    assert final(done)["attempts"] == 0  # no container group was ever created
    assert not [a for a in done.actions if a.get("functionName") == names.CREATE_GROUP]


def test_a_stale_attempts_callback_never_completes_the_next_attempt(make_task: TaskFactory) -> None:
    t = Task(make_task(maxAttempts=2))
    t.running()
    t.h.event(CALLBACK, report("failed", 1, exitCode=3, message="bad input"))
    deleting = to_cleanup(t, t.h.run())
    assert deleting.new[0].input["name"] == t.group(1)
    t.h.activity_completed(names.CLEANUP_GROUP, {"logTail": "attempt 1 log"})
    assert t.h.run().keys == [call_entity(CAPACITY, "release")]
    requeued = t.released(t.lease(1))
    assert requeued.keys == [
        signal_entity(TENANT_ENTITY, "record_usage"),
        signal_entity(PROGRESS, "set"),  # back in the queue for attempt 2
        call_entity(CAPACITY, "acquire"),
    ]
    assert requeued.new[2].input["leaseId"] == t.lease(2)
    t.h.entity_answered(CAPACITY, "acquire", AcquireResult(AcquireStatus.GRANTED).to_dict())
    creating = t.h.run()
    assert creating.keys == [activity(names.CREATE_GROUP)]
    assert (creating.new[0].input["name"], creating.new[0].input["attempt"]) == (t.group(2), 2)
    t.created(cancel_waiter_open=True)

    # Attempt 1's container, still alive somewhere, reports success: it must not end attempt 2.
    at = t.h.now
    t.h.event(CALLBACK, report("succeeded", 1, exitCode=0, result={"from": "attempt 1"}))
    ignored = t.h.run()
    assert ignored.keys == [wait_for(CALLBACK), t.poll_timer(at)]
    assert not ignored.finished

    t.h.event(CALLBACK, report("succeeded", 2, exitCode=0, result={"from": "attempt 2"}))
    cleaning = to_cleanup(t, t.h.run())
    assert cleaning.new[0].input["name"] == t.group(2)
    t.h.activity_completed(names.CLEANUP_GROUP, {})
    t.h.run()
    done = t.released(t.lease(2))
    assert done.is_done
    assert (final(done)["state"], final(done)["attempts"], final(done)["result"]) == (
        "Succeeded",
        2,
        {"from": "attempt 2"},
    )


def test_a_repeated_callback_does_not_complete_a_new_waiter(make_task: TaskFactory) -> None:
    t = Task(make_task())
    t.running()
    progress = report("progress", 1, progress={"done": 10})
    t.h.event(CALLBACK, progress)
    at = t.h.now
    listening = t.h.run()
    assert listening.keys == [wait_for(CALLBACK), t.poll_timer(at)]

    t.h.event(CALLBACK, progress)  # the container's HTTP retry sends the same report again
    at = t.h.now
    muted = t.h.run()
    # The repeat is recognised; the task stops listening for callbacks until its next poll instead of opening
    # a waiter that the SDK would complete at once with the same kept event, again and again.
    assert muted.keys == [t.poll_timer(at)]
    assert not muted.finished

    t.h.timer_fired(muted.new[0])
    assert t.h.run().keys == [activity(names.GET_GROUP_STATE)]
    t.h.activity_completed(names.GET_GROUP_STATE, RUNNING.to_dict())
    at = t.h.now
    relistening = t.h.run()
    assert relistening.keys == [wait_for(CALLBACK), t.poll_timer(at)]

    t.h.event(CALLBACK, report("succeeded", 1, exitCode=0))  # news after the repeat is still heard
    assert t.h.run().keys == [RESERVE_DELETE]


def test_a_cancelled_poll_timer_that_still_fires_changes_nothing(make_task: TaskFactory) -> None:
    """The extension cancels only its own token for a cancelled timer; DTFx keeps the timer, so Azure still
    delivers its TimerFired later. The orchestrator must sleep through it."""
    t = Task(make_task())
    t.running()
    first_poll = next(s for s in t.h.scheduled if s.type is ActionType.CREATE_TIMER)
    t.h.event(CALLBACK, report("progress", 1, progress={"done": 5}))
    at = t.h.now
    assert t.h.run().keys == [wait_for(CALLBACK), t.poll_timer(at)]
    assert t.h.cancelled(first_poll)
    t.h.timer_fired(first_poll)
    late = t.h.run()
    assert (late.keys, late.finished) == ([], False)
    t.h.event(CALLBACK, report("succeeded", 1, exitCode=0))
    assert t.h.run().keys == [RESERVE_DELETE]


def test_a_callback_kept_before_any_waiter_is_heard_once(make_task: TaskFactory) -> None:
    """A fast container reports before the create activity's completion is recorded. The SDK keeps the event
    and hands it to every later waiter of its name (Azure/azure-functions-durable-python#507)."""
    t = Task(make_task())
    assert t.admitted(AcquireStatus.GRANTED).keys == [activity(names.CREATE_GROUP)]
    t.h.event(CALLBACK, report("progress", 1, progress={"done": 1}))
    kept = t.h.run()
    assert (kept.keys, kept.deferred) == ([], [CALLBACK])
    created_at = t.h.now
    t.h.activity_completed(names.CREATE_GROUP, {"ok": True})
    episode = t.h.run()
    poll = t.poll_timer(created_at)
    # First waiter: the report is news. Second: the same kept event, recognised, so the task then waits on its
    # poll timer alone: it neither spins nor finishes.
    assert episode.keys == [
        signal_entity(PROGRESS, "set"),
        wait_for(CALLBACK),
        wait_for(CANCEL),
        poll,
        wait_for(CALLBACK),
        poll,
        poll,
    ]
    assert [t.h.cancelled(s) for s in episode.new if s.type is ActionType.CREATE_TIMER] == [True, True, False]
    assert not episode.finished


def create_failed(t: Task, error: ArmError) -> tuple[datetime, Scheduled]:
    """The create fails with `error`: the half-made group is deleted, then the task sleeps (ends early on cancel)."""
    t.h.activity_completed(names.CREATE_GROUP, {"ok": False, "error": error.to_dict()})
    deleting = to_cleanup(t, t.h.run())
    assert deleting.new[0].input == {"name": t.group(1), "stop": False, "delete": True}
    slept_at = t.h.now
    t.h.activity_completed(names.CLEANUP_GROUP, {})
    # The retry needs a new create slot from the capacity entity, not before the back-off has passed.
    reserving = t.h.run()
    assert reserving.keys == [call_entity(CAPACITY, "reserve_create")]
    not_before = reserving.new[0].input["notBefore"]
    t.h.entity_answered(CAPACITY, "reserve_create", {"createAt": not_before})
    sleeping = t.h.run()
    sleep = sleeping.new[0]
    assert sleeping.new[0].type is ActionType.CREATE_TIMER
    assert sleep.fire_at.timestamp() == pytest.approx(not_before, abs=0.001)
    return slept_at, sleep


def test_a_transient_arm_error_recreates_the_group_after_a_growing_back_off(make_task: TaskFactory) -> None:
    t = Task(make_task())
    admitted = t.admitted(AcquireStatus.GRANTED)
    first_create = admitted.new[0].input
    busy = ArmError(503, "ServiceUnavailable", "The service is temporarily unavailable.")

    slept_at, sleep = create_failed(t, busy)
    # About 2 s with up to 25% jitter, and a cancel ends the sleep early.
    assert timedelta(seconds=2) <= sleep.fire_at - slept_at <= timedelta(seconds=2.5)
    assert t.h.last is not None and t.h.last.keys[1:] == [wait_for(CANCEL)]
    t.h.timer_fired(sleep)
    retry = t.h.run()
    assert retry.keys == [activity(names.CREATE_GROUP)]
    assert retry.new[0].input == first_create  # the same attempt: same group name, attempt number and token

    slept_at, sleep = create_failed(t, busy)
    assert timedelta(seconds=4) <= sleep.fire_at - slept_at <= timedelta(seconds=5)  # doubled
    assert t.h.last is not None and t.h.last.keys[1:] == []  # the cancel waiter is already open
    t.h.timer_fired(sleep)
    assert t.h.run().keys == [activity(names.CREATE_GROUP)]
    t.created(cancel_waiter_open=True)


def test_a_permanent_arm_error_fails_the_task_without_retrying(make_task: TaskFactory) -> None:
    t = Task(make_task())
    t.admitted(AcquireStatus.GRANTED)
    refused = ArmError(400, "InaccessibleImage", "The image 'registry.example.com/team/worker:1' is not accessible.")
    t.h.activity_completed(names.CREATE_GROUP, {"ok": False, "error": refused.to_dict()})
    to_cleanup(t, t.h.run())
    t.h.activity_completed(names.CLEANUP_GROUP, {})
    assert t.h.run().keys == [call_entity(CAPACITY, "release")]
    done = t.released(t.lease(1))
    assert done.is_done
    assert final(done)["state"] == "Failed"
    assert "InaccessibleImage" in final(done)["error"]
    assert [a.get("functionName") for a in done.actions].count(names.CREATE_GROUP) == 1


EXITED_0 = GroupState(exists=True, provisioning_state="Succeeded", state="Succeeded", container_state="Terminated",
                      exit_code=0)  # fmt: skip


def polled_while_reporting(t: Task, *reports: dict[str, Any]) -> tuple[Episode, datetime]:
    """The poll timer wins the race; `reports` arrive while the group is read, and the read finds it exited.
    Returns the episode that reads the answer, and when the grace for a final report ends."""
    t.h.timer_fired()
    assert t.h.run().keys == [activity(names.GET_GROUP_STATE)]
    for sent in reports:
        t.h.event(CALLBACK, sent)
    t.h.activity_completed(names.GET_GROUP_STATE, EXITED_0.to_dict())
    grace_ends = t.h.now + timedelta(seconds=CALLBACK_GRACE_SECONDS)
    return t.h.run(), grace_ends


def finish_cleanly(t: Task, deciding: Episode) -> Episode:
    to_cleanup(t, deciding)
    t.h.activity_completed(names.CLEANUP_GROUP, {})
    t.h.run()
    return t.released(t.lease(1))


def test_a_final_report_that_arrives_while_the_group_is_read_keeps_its_result(make_task: TaskFactory) -> None:
    # The container reports success and exits before the poll's read of its group: the report, already in when
    # the read's answer arrives, decides at once (its race's timer is created and cancelled in the same episode).
    t = Task(make_task())
    t.running()
    cleaning, grace_ends = polled_while_reporting(t, report("succeeded", 1, exitCode=0, result={"answer": 42}))
    assert cleaning.keys == [timer(grace_ends), RESERVE_DELETE]
    assert t.h.cancelled(cleaning.new[0])
    done = finish_cleanly(t, cleaning)
    assert (final(done)["state"], final(done)["result"]) == ("Succeeded", {"answer": 42})


def test_a_final_report_behind_a_progress_report_is_still_read(make_task: TaskFactory) -> None:
    # The open waiter takes the progress report; the final one, a moment behind it, is heard in the grace race.
    t = Task(make_task())
    t.running()
    progress, last = report("progress", 1, progress={"done": 1}), report("succeeded", 1, exitCode=0, result=7)
    done = finish_cleanly(t, polled_while_reporting(t, progress, last)[0])
    assert (final(done)["state"], final(done)["result"], final(done)["progress"]) == ("Succeeded", 7, {"done": 1})


def test_an_exit_after_progress_waits_the_grace_for_a_final_report_then_ends_by_the_exit_code(
    make_task: TaskFactory,
) -> None:
    t = Task(make_task())
    t.running()
    t.h.event(CALLBACK, report("progress", 1, progress={"done": 1}))
    t.h.run()
    listening, grace_ends = polled_while_reporting(t)
    assert listening.keys == [timer(grace_ends)]  # the callback waiter opened after the progress report stays
    t.h.timer_fired(listening.new[0])
    done = finish_cleanly(t, t.h.run())
    assert (final(done)["state"], final(done)["exitCode"], final(done)["result"]) == ("Succeeded", 0, None)


def test_a_container_that_never_calls_back_ends_by_its_exit_code_at_once(make_task: TaskFactory) -> None:
    t = Task(make_task())
    t.running()
    cleaning, _ = polled_while_reporting(t)
    assert cleaning.keys == [RESERVE_DELETE]
    done = finish_cleanly(t, cleaning)
    assert (final(done)["state"], final(done)["exitCode"]) == ("Succeeded", 0)
