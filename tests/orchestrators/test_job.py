"""The job orchestrator through the real Durable SDK: how a job ends when chunks finish, a cancel comes, the
job timeout passes (alone, or while the job already drains after a cancel), and how it notifies."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any

import pytest

from acibatch import durable_names as names
from acibatch.callbackevents import CallbackEvents
from acibatch.plan import JobInput, chunk_instance_id, task_inputs
from acibatch.records import TaskState
from tests.orchestrators.actions import (
    Episode,
    Scheduled,
    activity_with_retry,
    call_entity,
    signal_entity,
    sub_orchestration,
    timer,
    wait_for,
)
from tests.orchestrators.conftest import TENANT, JobFactory
from tests.orchestrators.harness import Orchestration

# A replay loop that never settles would spin inside the SDK; fail fast instead.
pytestmark = pytest.mark.timeout(10)

PROGRESS = names.PROGRESS_ENTITY
CANCEL = {"requestedAt": "2026-01-05T09:01:00+00:00"}


class Job:
    """A job orchestration started and fanned out: its chunk calls and its timeout timer (if any)."""

    def __init__(self, job: JobInput) -> None:
        self.job = job
        self.h = Orchestration(names.JOB_ORCHESTRATOR, job.to_dict(), job.instance_id)
        assert self.h.run().keys == [call_entity(PROGRESS, "init")]
        self.h.entity_answered(PROGRESS, "init", None)
        self.fanned_out_at: datetime = self.h.now
        episode = self.h.run()
        self.chunks = [s for s in episode.new if s.name == names.CHUNK_ORCHESTRATOR]
        timeout = job.job_spec().job_timeout_seconds
        expected = [
            signal_entity(names.TENANT_ENTITY, "update_job"),
            *[sub_orchestration(names.CHUNK_ORCHESTRATOR)] * len(self.chunks),
            wait_for(names.EVENT_CANCEL),
        ]
        if timeout is not None:
            expected.append(timer(self.fanned_out_at + timeout_leg(timeout)))
        assert episode.keys == expected
        self.timeout: Scheduled | None = episode.new[-1] if timeout is not None else None

    def stop_tasks(self) -> Episode:
        """After a cancel or timeout won: the job marks itself cancelled, then tells its tasks to stop."""
        assert self.h.run().keys == [call_entity(PROGRESS, "cancel")]
        self.h.entity_answered(PROGRESS, "cancel", None)
        episode = self.h.run()
        assert episode.keys == [activity_with_retry(names.CANCEL_TASKS)]
        assert episode.new[0].input == {"tenant": TENANT, "jobId": self.job.job_id}
        self.h.activity_completed(names.CANCEL_TASKS, 2)
        return self.h.run()

    def chunks_finish(self, *counts: dict[str, int]) -> Episode:
        for chunk, chunk_counts in zip(self.chunks, counts, strict=True):
            self.h.sub_orchestration_completed(chunk, chunk_counts)
        return self.h.run()


def timeout_leg(seconds: int) -> timedelta:
    """The job timeout's first timer: past the longest timer Azure Storage takes (6 days), the SDK waits in
    3-day legs (the extension sends both durations)."""
    deadline = timedelta(seconds=seconds)
    return deadline if deadline <= timedelta(days=6) else timedelta(days=3)


def counts(**given: int) -> dict[str, int]:
    return {str(state): given.get(str(state), 0) for state in TaskState}


def assert_finished(episode: Episode) -> dict[str, Any]:
    assert episode.error is None, episode.error
    assert episode.is_done
    assert episode.keys == [signal_entity(names.TENANT_ENTITY, "update_job")]
    update = episode.new[0].input
    output: dict[str, Any] = episode.output
    assert update == {"jobId": "j1", "state": output["state"], "finishedAt": output["finishedAt"]}
    return output


def test_a_cancel_whose_job_timeout_passes_while_tasks_drain_ends_cancelled(make_job: JobFactory) -> None:
    job = Job(make_job(jobTimeoutSeconds=600))
    assert job.timeout is not None
    job.h.event(names.EVENT_CANCEL, CANCEL)
    assert job.stop_tasks().keys == []  # draining: waits for every task to stop

    job.h.timer_fired(job.timeout)  # the job timeout passes while the tasks are still stopping
    draining = job.h.run()
    assert (draining.keys, draining.finished) == ([], False)

    finished = job.chunks_finish({"Succeeded": 1, "Cancelled": 2})
    output = assert_finished(finished)
    assert output["state"] == "Cancelled"
    assert output["error"] == "cancelled on request"
    assert output["counts"] == counts(Succeeded=1, Cancelled=2)


def test_a_plain_job_timeout_fails_the_job_with_the_timeout_error(make_job: JobFactory) -> None:
    job = Job(make_job(jobTimeoutSeconds=600))
    job.h.timer_fired()
    assert job.h.now == job.fanned_out_at + timedelta(seconds=600)
    assert job.stop_tasks().keys == []
    output = assert_finished(job.chunks_finish({"Succeeded": 1, "Cancelled": 2}))
    assert output["state"] == "Failed"
    assert output["error"] == "the job ran longer than jobTimeoutSeconds=600"


def test_a_timeout_that_stopped_no_task_leaves_a_succeeded_job_without_error(make_job: JobFactory) -> None:
    job = Job(make_job(jobTimeoutSeconds=600))
    job.h.timer_fired()
    assert job.stop_tasks().keys == []
    output = assert_finished(job.chunks_finish({"Succeeded": 3}))  # every task had finished before the stop
    assert (output["state"], output["error"]) == ("Succeeded", None)


def test_a_cancel_after_the_timeout_keeps_the_first_cause(make_job: JobFactory) -> None:
    job = Job(make_job(jobTimeoutSeconds=600))
    job.h.timer_fired()
    assert job.stop_tasks().keys == []
    job.h.event(names.EVENT_CANCEL, CANCEL)  # the user cancels a job that is already stopping for its timeout
    assert job.h.run().keys == []  # nothing more to stop: no second cancel mark, no second cancel_tasks
    output = assert_finished(job.chunks_finish({"Cancelled": 3}))
    assert (output["state"], output["error"]) == ("Failed", "the job ran longer than jobTimeoutSeconds=600")


def test_a_cancel_with_a_timeout_longer_than_azure_storage_timers_ends_cancelled(make_job: JobFactory) -> None:
    """Past 6 days the SDK chains 3-day timers (what it does on Azure Storage); all fire while the job drains."""
    job = Job(make_job(jobTimeoutSeconds=7 * 24 * 3600))
    assert job.timeout is not None
    assert job.timeout.fire_at == job.fanned_out_at + timedelta(days=3)  # the first leg, not the deadline
    job.h.event(names.EVENT_CANCEL, CANCEL)
    assert job.stop_tasks().keys == []
    job.h.timer_fired(job.timeout)
    leg = job.h.run()
    assert leg.keys == [timer(job.fanned_out_at + timedelta(days=7))]  # the SDK schedules the last leg
    job.h.timer_fired(leg.new[0])  # and the whole timeout passes before the tasks have stopped
    assert job.h.run().keys == []
    output = assert_finished(job.chunks_finish({"Cancelled": 3}))
    assert (output["state"], output["error"]) == ("Cancelled", "cancelled on request")


def test_normal_completion_aggregates_every_chunk_and_cancels_the_timeout(make_job: JobFactory) -> None:
    job = Job(make_job(taskCount=25, jobTimeoutSeconds=3600))
    # About sqrt(n) tasks per chunk, at least 10: chunks of 10, 10 and 5 tasks, each under its own instance id.
    assert [len(chunk.input["job"]["spec"]["tasks"]) for chunk in job.chunks] == [10, 10, 5]
    assert [chunk.action["instanceId"] for chunk in job.chunks] == [
        chunk_instance_id(TENANT, "j1", n) for n in range(3)
    ]
    first_tasks = [chunk.input["job"]["spec"]["tasks"][0]["id"] for chunk in job.chunks]
    assert first_tasks == ["0", "10", "20"]

    job.h.sub_orchestration_completed(job.chunks[1], {"Succeeded": 10})
    assert job.h.run().keys == []  # still waiting for the others
    job.h.sub_orchestration_completed(job.chunks[0], {"Succeeded": 9, "Failed": 1})
    job.h.sub_orchestration_completed(job.chunks[2], {"Succeeded": 5})
    output = assert_finished(job.h.run())
    assert output["state"] == "Failed"
    assert output["error"] is None
    assert output["counts"] == counts(Succeeded=24, Failed=1)
    assert job.timeout is not None and job.h.cancelled(job.timeout)


def test_all_tasks_succeeding_makes_the_job_succeed(make_job: JobFactory) -> None:
    job = Job(make_job(taskCount=3))
    output = assert_finished(job.chunks_finish({"Succeeded": 3}))
    assert (output["state"], output["error"], output["counts"]) == ("Succeeded", None, counts(Succeeded=3))
    assert output["startedAt"] == "2026-01-05T09:00:00.000000Z"


def notified_job(make_job: JobFactory) -> tuple[Job, Scheduled]:
    job = Job(make_job(taskCount=3, notifyUrl="https://hooks.example.com/acibatch"))
    for chunk in job.chunks:
        job.h.sub_orchestration_completed(chunk, {"Succeeded": 3})
    episode = job.h.run()
    assert episode.keys == [signal_entity(names.TENANT_ENTITY, "update_job"), activity_with_retry(names.NOTIFY_JOB)]
    notify = episode.new[1]
    return job, notify


def test_notify_url_is_called_with_retries_and_the_summary(make_job: JobFactory) -> None:
    job, notify = notified_job(make_job)
    assert notify.action["retryOptions"] == {"firstRetryIntervalInMilliseconds": 5000, "maxNumberOfAttempts": 5}
    body = notify.input["body"]
    assert notify.input["url"] == "https://hooks.example.com/acibatch"
    assert (body["jobId"], body["tenant"], body["state"], body["error"]) == ("j1", TENANT, "Succeeded", None)
    job.h.activity_completed(notify, {"status": 204})
    done = job.h.run()
    assert (done.keys, done.is_done, done.error) == ([], True, None)
    assert done.output["state"] == "Succeeded" and "notifyError" not in done.output


def test_a_notify_url_the_outbound_guard_refuses_is_recorded_without_retrying(make_job: JobFactory) -> None:
    job, notify = notified_job(make_job)
    refusal = "notifyUrl refused: host hooks.example.com resolves to 10.0.0.5, a private address"
    job.h.activity_completed(notify, {"refused": refusal})
    done = job.h.run()
    assert (done.keys, done.is_done, done.error) == ([], True, None)
    assert done.output["state"] == "Succeeded" and done.output["notifyError"] == refusal


def test_a_notify_url_that_stays_down_does_not_change_the_outcome(make_job: JobFactory) -> None:
    job, _ = notified_job(make_job)
    for attempt in range(1, 6):
        failed_at = job.h.now
        job.h.activity_failed(names.NOTIFY_JOB, "503 from https://hooks.example.com/acibatch")
        assert job.h.run().keys == []  # retrying is the host's work: no new actions
        fired = job.h.timer_fired()
        # 5 s apart (Python sends no back-off coefficient); after the last attempt DTFx's timer is due at once.
        assert fired.fire_at - failed_at == timedelta(seconds=5 if attempt < 5 else 0)
        episode = job.h.run()
        assert episode.finished is (attempt == 5)
    assert (episode.is_done, episode.error, episode.keys) == (True, None, [])
    assert episode.output["state"] == "Succeeded"
    assert "503 from https://hooks.example.com/acibatch" in episode.output["notifyError"]


@pytest.mark.parametrize("events", ["shared", "perAttempt"])
def test_a_chunk_starts_one_task_orchestration_per_task_and_counts_their_outcomes(
    make_job: JobFactory, events: str
) -> None:
    job = dataclasses.replace(make_job(taskCount=3), callback_events=CallbackEvents(events))
    chunk = {"job": job.to_dict()}
    h = Orchestration(
        names.CHUNK_ORCHESTRATOR, chunk, chunk_instance_id(TENANT, "j1", 0), parent_instance_id=job.instance_id
    )
    started = h.run()
    tasks = task_inputs(job, job.job_spec(), 0, 3)
    assert started.keys == [sub_orchestration(names.TASK_ORCHESTRATOR)] * 3
    assert [s.action["instanceId"] for s in started.new] == [task.instance_id for task in tasks]
    # As the job recorded at submission: the bare task (shared names, the default), or with the field that has it
    # wait under per-attempt callback names (acibatch.checkpoint).
    gained = {"callbackEvents": "perAttempt"} if events == "perAttempt" else {}
    assert [s.input for s in started.new] == [{**task.to_dict(), **gained} for task in tasks]
    for scheduled, state in zip(started.new, ["Succeeded", "Failed", "Succeeded"], strict=True):
        h.sub_orchestration_completed(scheduled, {"id": scheduled.input["taskId"], "state": state})
    done = h.run()
    assert (done.is_done, done.output) == (True, {"Succeeded": 2, "Failed": 1})


def test_a_task_orchestration_that_failed_counts_as_a_failed_task_and_the_chunk_still_finishes(
    make_job: JobFactory,
) -> None:
    job = make_job(taskCount=3)
    h = Orchestration(names.CHUNK_ORCHESTRATOR, {"job": job.to_dict()}, chunk_instance_id(TENANT, "j1", 0))
    started = h.run()
    # The middle task's orchestration is failed by the host (say, a custom status over the extension's limit);
    # its siblings go on, and one of them finishes after the failure.
    h.sub_orchestration_completed(started.new[0], {"id": "0", "state": "Succeeded"})
    h.sub_orchestration_failed(started.new[1], "custom status too large")
    assert not h.run().finished
    h.sub_orchestration_completed(started.new[2], {"id": "2", "state": "Succeeded"})
    done = h.run()
    assert (done.is_done, done.error, done.output) == (True, None, {"Succeeded": 2, "Failed": 1})
    assert done.keys == [signal_entity(PROGRESS, "set")]
    assert done.new[0].input == {"taskId": "1", "state": "Failed"}  # its own report never came


def test_a_chunk_that_failed_fails_its_tasks_in_the_counts_not_the_job(make_job: JobFactory) -> None:
    job = Job(make_job(taskCount=30))  # three chunks of ten
    assert len(job.chunks) == 3
    job.h.sub_orchestration_completed(job.chunks[0], counts(Succeeded=10))
    job.h.sub_orchestration_failed(job.chunks[1], "worker lost")
    assert not job.h.run().finished
    job.h.sub_orchestration_completed(job.chunks[2], counts(Succeeded=10))
    output = assert_finished(job.h.run())
    assert (output["state"], output["counts"]["Succeeded"], output["counts"]["Failed"]) == ("Failed", 20, 10)


def test_a_cancel_whose_stop_activity_keeps_failing_still_ends_the_job(make_job: JobFactory) -> None:
    job = Job(make_job())
    job.h.event(names.EVENT_CANCEL, CANCEL)
    assert job.h.run().keys == [call_entity(PROGRESS, "cancel")]
    job.h.entity_answered(PROGRESS, "cancel", None)
    stopping = job.h.run()
    assert stopping.keys == [activity_with_retry(names.CANCEL_TASKS)]
    for _ in range(4):  # the store cannot be read: every try fails, DTFx retries after a timer (one after the last)
        job.h.activity_failed(names.CANCEL_TASKS, "storage unavailable")
        job.h.run()
        job.h.timer_fired()
        job.h.run()
    draining = job.h.last
    assert draining is not None and draining.error is None and not draining.finished
    output = assert_finished(job.chunks_finish(counts(Succeeded=3)))
    assert output["state"] == "Cancelled"
    assert output["error"].startswith("cancelled on request (telling its tasks to stop failed")
