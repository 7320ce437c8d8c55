"""The upload grace of a task run with the acibatch agent, through the real Durable SDK: taskTimeoutSeconds bounds
the command, UPLOAD_GRACE_SECONDS the uploads after it (`orchestrators.task_agent.start_upload_grace`); the attempt
never hangs on a sidecar that does not report, nor on a group that never ends at the timeout; a command that runs
again is still bound by the timeout; a throttled look at the timeout is tried again; and the SAS outlive the wait."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest
from azure.durable_functions.models.history.HistoryEventType import HistoryEventType

from acibatch import durable_names as names
from acibatch.aci import GroupState
from acibatch.blobstore.sas import CLOCK_SKEW, UPLOAD_GRACE, SasWindow
from acibatch.policy import UPLOAD_GRACE_SECONDS
from orchestrators.task_attempt import LAST_LOOK_RETRIES, LAST_LOOK_WAIT_MAX_SECONDS
from tests.orchestrators.actions import Episode, activity, call_entity, continue_as_new, iso, timer
from tests.orchestrators.conftest import TaskFactory
from tests.orchestrators.driver import Driver
from tests.orchestrators.test_task import (
    CALLBACK,
    CAPACITY,
    PROGRESS,
    RESERVE_DELETE,
    RUNNING,
    Task,
    final,
    report,
    to_cleanup,
)
from tests.orchestrators.test_task_agent import GROUP_ENDED, READ_RESULT, TASK_EXITED, agent_task, completed, ended
from tests.orchestrators.test_task_generations import next_generation, poll_once

pytestmark = pytest.mark.timeout(20)

# The upload grace (task_agent.start_upload_grace): taskTimeoutSeconds bounds the command, UPLOAD_GRACE_SECONDS the
# uploads after it. A 90 s timeout with 30 s polls: polls at +30 and +60, the timeout at +90.
GRACE = timedelta(seconds=UPLOAD_GRACE_SECONDS)
UPLOADS_TIMED_OUT = (
    "failed after 1 attempt(s): timed out: the uploads timed out: the agent had not saved the logs and uploaded "
    f"the outputs {UPLOAD_GRACE_SECONDS} s after the command ended"
)
COMMAND_TIMED_OUT = "failed after 1 attempt(s): timed out: the task ran longer than taskTimeoutSeconds=90"
GET_STATE = activity(names.GET_GROUP_STATE)
RESTART = activity(names.RESTART_GROUP)
# Reads that end nothing by themselves (the policy waits, or restarts in place): the platform stopped the container
# and it waits to start again (a Spot eviction waiting for a node); ACI restarted it by itself; its image cannot be
# pulled yet (the policy restarts it in place).
WAITING_AGAIN = replace(RUNNING, container_state="Waiting")
RESTARTED_BY_ACI = replace(RUNNING, restart_count=1)
CANNOT_START = replace(WAITING_AGAIN, provisioning_state="Creating", failure="Failed to pull image: i/o timeout")
# The platform's maintenance stopped the task container and the group ended with no result.json: a restart in place.
MAINTENANCE_STOP = replace(GROUP_ENDED, exit_code=7147, state="Failed")


@dataclass(frozen=True)
class Poll:
    episode: Episode  # the one after the group was read
    fired: datetime  # when its timer fired
    seen: datetime  # the orchestration's time when it read the answer


def poll_as(t: Task, state: GroupState) -> Poll:
    """The next timer fires and the group reads as `state`."""
    fired = t.h.timer_fired().fire_at
    assert t.h.run().keys == [activity(names.GET_GROUP_STATE)]
    t.h.activity_completed(names.GET_GROUP_STATE, state.to_dict())
    seen = t.h.now
    return Poll(t.h.run(), fired, seen)


def timing(make_task: TaskFactory, *, outputs: bool = True) -> tuple[Task, datetime]:
    """An agent task with a 90 s timeout, running; returns it and its deadline (90 s after it was created)."""
    t = Task(agent_task(make_task, outputs=outputs, maxAttempts=1, taskTimeoutSeconds=90))
    t.running()
    first = poll_as(t, RUNNING)
    return t, first.fired + timedelta(seconds=60)


def ended_at(t: Task, moment: datetime) -> None:
    """The attempt ended at `moment`: the last timer fired by then (the harness's clock moves a second per episode,
    so a poll's own episodes may reach it), and the decision came after it."""
    fired = [e for e in t.h.history if e["EventType"] == HistoryEventType.TIMER_FIRED]
    last = datetime.strptime(fired[-1]["FireAt"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert moment - timedelta(seconds=3) <= last <= moment < t.h.now, (last, moment, t.h.now)


def uploading_forever(t: Task) -> Driver:
    """Plays on (across generations) while the sidecar uploads and never reports."""
    return Driver(
        t.h,
        activities={names.GET_GROUP_STATE: TASK_EXITED.to_dict()},
        entities={(PROGRESS, "cancelled"): {"cancelled": False}},
    )


def test_a_command_that_ends_near_its_timeout_keeps_its_uploads_past_it(make_task: TaskFactory) -> None:
    t, deadline = timing(make_task)
    uploading = poll_as(t, TASK_EXITED)  # +60: the command has ended; the sidecar uploads
    assert uploading.seen < deadline and not uploading.episode.finished
    # Past the timeout nothing ends: the uploads have their grace.
    for _ in range(5):
        keys = poll_as(t, TASK_EXITED).episode.keys
        assert READ_RESULT not in keys and RESERVE_DELETE not in keys, keys
    assert t.h.now > deadline
    t.h.event(CALLBACK, completed(1))
    done = ended(t, t.h.run())
    assert (done["state"], done["exitCode"]) == ("Succeeded", 0)


def test_a_sidecar_that_never_reports_ends_the_attempt_when_the_grace_is_over(make_task: TaskFactory) -> None:
    # No hang: the task container has ended, the sidecar runs on and never reports, nothing writes result.json.
    t, deadline = timing(make_task)
    grace_ends = poll_as(t, TASK_EXITED).seen + GRACE
    deciding = uploading_forever(t).run_until(lambda e: RESERVE_DELETE in e.keys)
    assert max(deadline, grace_ends) == grace_ends
    ended_at(t, grace_ends)
    cleaning = to_cleanup(t, deciding)
    assert cleaning.new[0].input["stop"] is True  # the sidecar is stopped before the group is deleted
    t.h.activity_completed(names.CLEANUP_GROUP, {})
    assert t.h.run().keys == [call_entity(CAPACITY, "release")]
    done = final(t.released(t.lease(1)))
    assert (done["state"], done["error"]) == ("Failed", UPLOADS_TIMED_OUT)


def test_a_command_that_ended_after_the_last_poll_is_seen_at_the_timeout(make_task: TaskFactory) -> None:
    t, deadline = timing(make_task)
    poll_as(t, RUNNING)  # +60: still at work
    # +90: the timeout; one more look finds the command ended meanwhile: its uploads get their grace.
    last = poll_as(t, TASK_EXITED)
    assert last.fired == deadline
    assert last.episode.keys == [t.poll_timer(last.seen)] and not last.episode.finished
    t.h.event(CALLBACK, completed(1))
    assert ended(t, t.h.run())["state"] == "Succeeded"


def test_a_command_still_running_at_its_timeout_times_out_after_one_last_look(make_task: TaskFactory) -> None:
    t, deadline = timing(make_task)
    poll_as(t, RUNNING)
    last = poll_as(t, RUNNING)  # the last look, at the timeout
    assert last.fired == deadline
    done = ended(t, last.episode)
    assert (done["state"], done["error"]) == ("Failed", COMMAND_TIMED_OUT)


def test_a_task_that_reports_done_but_runs_on_still_times_out_at_its_timeout(make_task: TaskFactory) -> None:
    # The task's report starts the upload grace, but the grace is for uploads: a command still at work at the
    # timeout has run too long, whatever it reported.
    t, deadline = timing(make_task)
    poll_as(t, RUNNING)  # +60
    t.h.event(CALLBACK, report("succeeded", 1, exitCode=0))
    t.h.run()
    last = poll_as(t, RUNNING)  # woken at the timeout, though the uploads' deadline is later
    assert last.fired == deadline
    done = ended(t, last.episode)
    assert (done["state"], done["error"]) == ("Failed", COMMAND_TIMED_OUT)


def test_the_tasks_report_near_its_timeout_keeps_the_uploads_going(make_task: TaskFactory) -> None:
    t, deadline = timing(make_task)
    poll_as(t, RUNNING)
    t.h.event(CALLBACK, report("succeeded", 1, exitCode=0, result={"rows": 1}))  # then it exits
    t.h.run()
    at_timeout = poll_as(t, TASK_EXITED)  # the command has ended: its uploads go on
    assert at_timeout.fired == deadline and READ_RESULT not in at_timeout.episode.keys
    assert RESERVE_DELETE not in poll_as(t, TASK_EXITED).episode.keys
    t.h.event(CALLBACK, completed(1))
    done = ended(t, t.h.run())
    assert (done["state"], done["result"]) == ("Succeeded", {"rows": 1})


def test_the_grace_counts_from_the_commands_end_not_from_an_early_report(make_task: TaskFactory) -> None:
    # The task reports success at once, then its command goes on (cleaning up) until half a grace before its timeout.
    t = Task(agent_task(make_task, maxAttempts=1, taskTimeoutSeconds=3 * UPLOAD_GRACE_SECONDS))
    t.running()
    first = poll_as(t, RUNNING)
    deadline = first.fired - timedelta(seconds=30) + 3 * GRACE  # the first poll came 30 s after the create
    t.h.event(CALLBACK, report("succeeded", 1, exitCode=0))
    t.h.run()
    still_running = Driver(
        t.h,
        activities={names.GET_GROUP_STATE: RUNNING.to_dict()},
        entities={(PROGRESS, "cancelled"): {"cancelled": False}},
    )
    still_running.run_until(lambda e: t.h.now >= deadline - GRACE / 2 and activity(names.GET_GROUP_STATE) not in e.keys)
    grace_ends = poll_as(t, TASK_EXITED).seen + GRACE
    assert grace_ends > deadline
    deciding = uploading_forever(t).run_until(lambda e: RESERVE_DELETE in e.keys)
    ended_at(t, grace_ends)  # a whole grace after the command's end, not an hour after the report
    assert ended(t, deciding)["error"] == UPLOADS_TIMED_OUT


def test_the_upload_deadline_survives_a_continue_as_new(make_task: TaskFactory) -> None:
    t, _ = timing(make_task)
    grace_ends = poll_as(t, TASK_EXITED).seen + GRACE
    while poll_as(t, TASK_EXITED).episode.keys != [continue_as_new()]:
        pass
    assert t.h.last is not None
    assert t.h.last.continued_with["resume"]["uploadDeadline"] == iso(grace_ends)
    next_generation(t)
    deciding = uploading_forever(t).run_until(lambda e: RESERVE_DELETE in e.keys)
    ended_at(t, grace_ends)  # the same deadline: a new generation does not extend it again
    assert ended(t, deciding)["error"] == UPLOADS_TIMED_OUT


def test_a_task_without_the_agent_keeps_no_upload_deadline(make_task: TaskFactory) -> None:
    t = Task(make_task())
    t.running()
    while poll_once(t) != [continue_as_new()]:
        pass
    assert t.h.last is not None
    assert "uploadDeadline" not in t.h.last.continued_with["resume"]


@pytest.mark.parametrize(
    ("read", "seen"),
    [
        (WAITING_AGAIN, "the container is waiting to start again after it ran (restart policy Never)"),
        (RESTARTED_BY_ACI, "ACI restarted the container by itself (restartCount 1, restart policy Never)"),
        (CANNOT_START, "Failed to pull image: i/o timeout"),
    ],
)
def test_a_group_that_has_not_ended_at_the_timeout_times_out_at_once(
    make_task: TaskFactory, read: GroupState, seen: str
) -> None:
    # The policy would wait for ACI to start it again (or restart it in place): past the timeout that would poll
    # again at once, with no timer, for ever, and a restart would run the command again.
    t, deadline = timing(make_task)
    poll_as(t, RUNNING)  # +60
    at_timeout = poll_as(t, read)
    assert at_timeout.fired == deadline
    assert GET_STATE not in at_timeout.episode.keys and RESTART not in at_timeout.episode.keys
    done = ended(t, at_timeout.episode)
    assert (done["state"], done["error"]) == ("Failed", f"{COMMAND_TIMED_OUT}; at the timeout: {seen}")


def throttled_at_the_timeout(t: Task, deadline: datetime, retry_after: float) -> tuple[Episode, datetime]:
    """ARM throttles the read at the timeout and the last look's first read, made at once; returns the episode
    that waits for ARM's Retry-After (or a report) before it looks again, and when it began."""
    poll_as(t, RUNNING)  # +60
    assert t.h.timer_fired().fire_at == deadline
    assert t.h.run().keys == [GET_STATE]
    t.h.activity_completed(names.GET_GROUP_STATE, {"throttled": retry_after})
    assert t.h.run().keys == [GET_STATE]  # nothing was learned: the last look reads again
    t.h.activity_completed(names.GET_GROUP_STATE, {"throttled": retry_after})
    at = t.h.now
    return t.h.run(), at


def test_a_throttled_look_at_the_timeout_looks_again_after_retry_after(make_task: TaskFactory) -> None:
    t, deadline = timing(make_task)
    waiting, at = throttled_at_the_timeout(t, deadline, 7.0)
    assert waiting.keys[-1:] == [timer(at + timedelta(seconds=7))] and not waiting.finished
    # The command had ended just before its timeout: the look after Retry-After sees it, and its uploads go on.
    again = poll_as(t, TASK_EXITED)
    assert again.seen > deadline and READ_RESULT not in again.episode.keys and not again.episode.finished
    t.h.event(CALLBACK, completed(1))
    assert ended(t, t.h.run())["state"] == "Succeeded"


def test_a_look_at_the_timeout_that_stays_throttled_times_out_after_a_bounded_wait(make_task: TaskFactory) -> None:
    t, deadline = timing(make_task)
    episode, at = throttled_at_the_timeout(t, deadline, 3600.0)  # ARM asks for an hour: each wait is capped
    for _ in range(LAST_LOOK_RETRIES):
        assert episode.keys[-1:] == [timer(at + timedelta(seconds=LAST_LOOK_WAIT_MAX_SECONDS))], episode.keys
        t.h.timer_fired()
        assert t.h.run().keys == [GET_STATE]
        t.h.activity_completed(names.GET_GROUP_STATE, {"throttled": 3600.0})
        at = t.h.now
        episode = t.h.run()
    assert t.h.now - deadline <= timedelta(seconds=LAST_LOOK_RETRIES * (LAST_LOOK_WAIT_MAX_SECONDS + 5))
    done = ended(t, episode)
    assert (done["state"], done["error"]) == ("Failed", COMMAND_TIMED_OUT)


def test_a_look_at_the_timeout_that_finds_a_group_waiting_to_start_again_times_out(make_task: TaskFactory) -> None:
    t, deadline = timing(make_task)
    throttled_at_the_timeout(t, deadline, 5.0)
    t.h.timer_fired()
    assert t.h.run().keys == [GET_STATE]
    t.h.activity_completed(names.GET_GROUP_STATE, WAITING_AGAIN.to_dict())
    done = ended(t, t.h.run())
    assert done["error"].startswith(f"{COMMAND_TIMED_OUT}; at the timeout: the container is waiting to start again")


def test_the_agents_report_during_a_throttled_look_ends_the_attempt(make_task: TaskFactory) -> None:
    t, deadline = timing(make_task)
    throttled_at_the_timeout(t, deadline, 30.0)
    t.h.event(CALLBACK, completed(1))
    done = ended(t, t.h.run())
    assert (done["state"], done["exitCode"]) == ("Succeeded", 0)


def test_a_command_that_runs_again_after_its_grace_began_times_out_at_its_timeout(make_task: TaskFactory) -> None:
    t, deadline = timing(make_task)
    poll_as(t, TASK_EXITED)  # +60: the task container has ended (the platform stopped it, say): the grace begins
    again = poll_as(t, RUNNING)  # ACI started it again; the watch still wakes at the timeout
    assert again.fired == deadline
    done = ended(t, again.episode)
    assert (done["state"], done["error"]) == ("Failed", COMMAND_TIMED_OUT)


def test_a_command_that_ran_again_gets_its_grace_from_its_last_end(make_task: TaskFactory) -> None:
    t = Task(agent_task(make_task, maxAttempts=1, taskTimeoutSeconds=150))
    t.running()
    poll_as(t, TASK_EXITED)  # +30: the grace begins
    poll_as(t, RUNNING)  # +60: it runs again (on an emptied volume, from the start)
    grace_ends = poll_as(t, TASK_EXITED).seen + GRACE  # +90: it has ended again
    deciding = uploading_forever(t).run_until(lambda e: RESERVE_DELETE in e.keys)
    ended_at(t, grace_ends)
    assert ended(t, deciding)["error"] == UPLOADS_TIMED_OUT


def test_a_restart_in_place_is_made_before_the_timeout_but_never_past_it(make_task: TaskFactory) -> None:
    # The platform's maintenance stopped the task container and the group ended with no result.json: the policy
    # restarts the group in place. Before the timeout it does; at the timeout that would run the command past it.
    t, deadline = timing(make_task, outputs=False)

    def stopped() -> Poll:
        read = poll_as(t, MAINTENANCE_STOP)
        assert read.episode.keys == [READ_RESULT]
        t.h.activity_completed(names.READ_ATTEMPT_RESULT, {"found": False})
        return replace(read, episode=t.h.run())

    before = stopped()  # +60
    assert before.fired < deadline and before.episode.keys == [RESTART]
    t.h.activity_completed(names.RESTART_GROUP, {})
    t.h.run()
    at_timeout = stopped()  # the restarted command was stopped again, at its timeout
    assert at_timeout.fired == deadline and RESTART not in at_timeout.episode.keys
    done = ended(t, at_timeout.episode)
    assert (done["state"], done["error"]) == ("Failed", COMMAND_TIMED_OUT)


@pytest.mark.parametrize("minted_after", [0, 5, 29 * 60, 31 * 60, 3 * 3600])
def test_the_sas_outlive_the_orchestrators_longest_wait_for_the_uploads(minted_after: int) -> None:
    # The create activity mints the SAS `minted_after` seconds after the attempt's request was made (create-slot and
    # capacity waits come between). The orchestrator starts the timeout when it hears the create went through (here
    # 20 minutes later: a slow ARM call, a backed-up queue), may look LAST_LOOK_RETRIES more throttled times at the
    # timeout before it sees the command's end, then waits the whole grace; the clocks may differ by CLOCK_SKEW.
    assert UPLOAD_GRACE == GRACE
    created = datetime(2026, 1, 5, 9, 0, 0, tzinfo=UTC)
    minted = created + timedelta(seconds=minted_after)
    window = SasWindow.for_attempt(90, int(created.timestamp()), now=minted)
    heard = minted + timedelta(minutes=20)
    looks = timedelta(seconds=LAST_LOOK_RETRIES * LAST_LOOK_WAIT_MAX_SECONDS)
    assert window.expiry >= heard + timedelta(seconds=90) + looks + GRACE + CLOCK_SKEW
