"""A task run with the acibatch agent, through the real Durable SDK: the task's own report is kept until the agent's
`completed` report ends the attempt; file failures fail it with Batch's category (retried only when the exit
conditions say so); the poll reads result.json once the whole group has ended, and decides without it.

Like test_task.py these assert the exact next actions and the final record, never the custom status."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from acibatch import durable_names as names
from acibatch.aci import GroupState
from acibatch.plan import TaskInput
from acibatch.tenancy import AcquireResult, AcquireStatus
from tests.orchestrators.actions import Episode, activity, call_entity, continue_as_new, signal_entity, wait_for
from tests.orchestrators.conftest import TENANT, TaskFactory
from tests.orchestrators.test_task import (
    CALLBACK,
    CAPACITY,
    PROGRESS,
    RESERVE_DELETE,
    TENANT_ENTITY,
    Task,
    final,
    report,
    to_cleanup,
)
from tests.orchestrators.test_task_generations import next_generation, poll_once

pytestmark = pytest.mark.timeout(20)

READ_RESULT = activity(names.READ_ATTEMPT_RESULT)
OUTPUTS = (
    {
        "filePattern": "out/**/*.txt",
        "destination": {"container": {"path": "results"}},
        "uploadOptions": {"uploadCondition": "taskCompletion"},
    },
)
# The task container has ended; the agent's sidecar still runs (saving logs, uploading): the group runs on.
TASK_EXITED = GroupState(exists=True, provisioning_state="Succeeded", state="Running", container_state="Terminated",
                         exit_code=0, sidecars_active=True)  # fmt: skip
GROUP_ENDED = replace(TASK_EXITED, state="Succeeded", sidecars_active=False)
MISSING_INPUT = {"category": "preProcessingError", "message": "inputs/data/a.csv: not found (404)", "file": "a.csv"}
UPLOAD_REFUSED = {"category": "fileUploadError", "message": "upload refused (403)", "file": "out/r.txt"}


def agent_task(make_task: TaskFactory, *, outputs: bool = True, **spec: Any) -> TaskInput:
    """A task as the plan makes it when storage is on: run with the agent, with outputFiles unless told not to."""
    return replace(make_task(**spec), agent=True, output_files=OUTPUTS if outputs else ())


def completed(attempt: int, exit_code: int | None = 0, failure: dict[str, Any] | None = None) -> dict[str, Any]:
    """The agent's report as the API raises it (`CallbackReport.to_dict` of a `completed` body)."""
    return {
        **report("completed", attempt, exitCode=exit_code),
        "outputs": {"count": 1, "bytes": 12},
        "failure": failure,
    }


def listening(t: Task, episode: Episode, at: Any) -> None:
    """The attempt goes on: the task listens for callbacks again, with a fresh poll timer."""
    assert episode.keys == [wait_for(CALLBACK), t.poll_timer(at)], episode.keys
    assert not episode.finished


def ended(t: Task, deciding: Episode, attempt: int = 1, **cleanup: Any) -> dict[str, Any]:
    """The decision's cleanup and release; returns the final record."""
    to_cleanup(t, deciding)
    t.h.activity_completed(names.CLEANUP_GROUP, cleanup)
    assert t.h.run().keys == [call_entity(CAPACITY, "release")]
    done = t.released(t.lease(attempt))
    assert done.is_done
    return final(done)


def polling(t: Task, episode: Episode, at: Any) -> None:
    """After a poll that ended nothing: the callback waiter stays open, a fresh poll timer is set."""
    assert episode.keys == [t.poll_timer(at)], episode.keys
    assert not episode.finished


def polled(t: Task, state: GroupState) -> tuple[Episode, Any]:
    """The poll timer fires and the group is read as `state`; returns the next episode and when it began."""
    t.h.timer_fired()
    assert t.h.run().keys == [activity(names.GET_GROUP_STATE)]
    t.h.activity_completed(names.GET_GROUP_STATE, state.to_dict())
    at = t.h.now
    return t.h.run(), at


def next_attempt(t: Task) -> None:
    """Attempt 1 ended for a new one: its group is cleaned up, its lease released, and attempt 2 created."""
    to_cleanup(t, t.h.run())
    t.h.activity_completed(names.CLEANUP_GROUP, {})
    assert t.h.run().keys == [call_entity(CAPACITY, "release")]
    requeued = t.released(t.lease(1))
    assert requeued.keys == [
        signal_entity(TENANT_ENTITY, "record_usage"),
        signal_entity(PROGRESS, "set"),
        call_entity(CAPACITY, "acquire"),
    ]
    t.h.entity_answered(CAPACITY, "acquire", AcquireResult(AcquireStatus.GRANTED).to_dict())
    creating = t.h.run()
    assert creating.keys == [activity(names.CREATE_GROUP)]
    assert creating.new[0].input["attempt"] == 2 and creating.new[0].input["agent"] is True
    t.created(cancel_waiter_open=True)


def creates(episode: Episode) -> int:
    return [a.get("functionName") for a in episode.actions].count(names.CREATE_GROUP)


def test_the_tasks_report_waits_for_the_agents_and_its_result_is_kept(make_task: TaskFactory) -> None:
    t = Task(agent_task(make_task))
    t.running()
    at = t.h.now
    t.h.event(CALLBACK, report("succeeded", 1, exitCode=0, result={"rows": 10}))
    listening(t, t.h.run(), at)  # the outputs are still being uploaded: nothing ends yet
    t.h.event(CALLBACK, completed(1))
    done = ended(t, t.h.run())
    assert (done["state"], done["result"], done["exitCode"], done["attempts"]) == ("Succeeded", {"rows": 10}, 0, 1)
    assert "failureCategory" not in done


def test_a_missing_input_fails_the_task_as_a_pre_processing_error_without_retry(make_task: TaskFactory) -> None:
    t = Task(agent_task(make_task, maxAttempts=3))
    t.running()
    t.h.event(CALLBACK, completed(1, None, MISSING_INPUT))
    deciding = t.h.run()
    done = ended(t, deciding)
    assert (done["state"], done["failureCategory"], done["exitCode"]) == ("Failed", "preProcessingError", None)
    assert done["error"] == "preProcessingError: inputs/data/a.csv: not found (404) (file a.csv)"
    assert creates(deciding) == 1


def test_a_pre_processing_error_is_retried_when_the_exit_conditions_say_retry(make_task: TaskFactory) -> None:
    rules = {"preProcessingError": {"action": "retry"}}
    t = Task(agent_task(make_task, maxAttempts=2, exitConditions=rules))
    t.running()
    t.h.event(CALLBACK, completed(1, None, MISSING_INPUT))
    next_attempt(t)
    # The input is there now: attempt 2 succeeds, and the task shows no failure category.
    t.h.event(CALLBACK, completed(2))
    done = ended(t, t.h.run(), attempt=2)
    assert (done["state"], done["attempts"]) == ("Succeeded", 2)
    assert "failureCategory" not in done and "preProcessingError" in done["error"]  # why attempt 1 failed


@pytest.mark.parametrize(
    ("options", "note"),
    [({"action": "fail", "dependencyAction": "satisfy"}, ""),
     ({"action": "succeed", "dependencyAction": "satisfy"}, "; exitConditions cannot make a file failure succeed")],
)  # fmt: skip
def test_no_exit_condition_makes_a_pre_processing_error_succeed(
    make_task: TaskFactory, options: dict[str, str], note: str
) -> None:
    # Batch's exit options for preProcessingError carry only dependency and job actions: the task still fails.
    t = Task(agent_task(make_task, maxAttempts=3, exitConditions={"preProcessingError": options}))
    t.running()
    t.h.event(CALLBACK, completed(1, None, MISSING_INPUT))
    done = ended(t, t.h.run())
    assert (done["state"], done["failureCategory"], done["dependencyAction"]) == (
        "Failed",
        "preProcessingError",
        "satisfy",
    )
    assert done["error"].endswith(f"(file a.csv){note}")


def test_an_upload_failure_fails_the_task_even_after_it_reported_success(make_task: TaskFactory) -> None:
    # The exit conditions' `default` stands for a missing fileUploadError rule, as in Batch.
    t = Task(
        agent_task(make_task, maxAttempts=3, exitConditions={"default": {"action": "fail", "jobAction": "terminate"}})
    )
    t.running()
    t.h.event(CALLBACK, report("succeeded", 1, exitCode=0, result={"rows": 10}))
    t.h.run()
    t.h.event(CALLBACK, completed(1, 0, UPLOAD_REFUSED))
    done = ended(t, t.h.run())
    assert (done["state"], done["failureCategory"], done["jobAction"]) == ("Failed", "fileUploadError", "terminate")
    assert done["error"] == "fileUploadError: upload refused (403) (file out/r.txt)"
    assert done["result"] is None  # the task failed: its reported result is not its outcome


def test_the_tasks_failed_report_fails_the_attempt_though_the_agent_uploaded_everything(make_task: TaskFactory) -> None:
    t = Task(agent_task(make_task, maxAttempts=1))
    t.running()
    t.h.event(CALLBACK, report("failed", 1, exitCode=4, message="bad rows"))
    t.h.run()
    t.h.event(CALLBACK, completed(1, 4))
    done = ended(t, t.h.run())
    assert (done["state"], done["exitCode"]) == ("Failed", 4)
    assert done["error"] == "failed after 1 attempt(s): the task reported failure with exit code 4: bad rows"
    assert "failureCategory" not in done


def read_result(t: Task, state: GroupState = GROUP_ENDED) -> None:
    """The command ended (the sidecar still at work), then the whole group: result.json is read."""
    polling(t, *polled(t, TASK_EXITED))
    reading, _ = polled(t, state)
    assert reading.keys == [READ_RESULT]
    assert reading.new[0].input == {"tenant": TENANT, "jobId": t.task.job_id, "taskId": t.task.task_id, "attempt": 1}


EXIT_3 = "failed after 1 attempt(s): the container ended with exit code 3"
EXIT_137 = "failed after 1 attempt(s): the container ended with exit code 137"
REFUSED = "fileUploadError: upload refused (403) (file out/r.txt)"


KILLED = replace(GROUP_ENDED, state="Failed", exit_code=137)


@pytest.mark.parametrize(
    ("found", "group", "expected"),
    [
        ({"exitCode": 3, "failure": None}, GROUP_ENDED, {"state": "Failed", "exitCode": 3, "error": EXIT_3}),
        # No exit code recorded (the wrapper was killed): the task container's, as ACI gives it.
        ({"exitCode": None, "failure": None}, KILLED,
         {"state": "Failed", "exitCode": 137, "error": EXIT_137}),
        # A failure in result.json decides as in the agent's report.
        ({"exitCode": 0, "failure": UPLOAD_REFUSED}, GROUP_ENDED,
         {"state": "Failed", "exitCode": 0, "failureCategory": "fileUploadError", "error": REFUSED}),
    ],
)  # fmt: skip
def test_the_poll_waits_for_the_whole_group_then_decides_by_result_json(
    make_task: TaskFactory, found: dict[str, Any], group: GroupState, expected: dict[str, Any]
) -> None:
    t = Task(agent_task(make_task, maxAttempts=1))
    t.running()
    read_result(t, group)
    t.h.activity_completed(names.READ_ATTEMPT_RESULT, {"found": True, **found, "outputs": {"count": 2, "bytes": 7}})
    done = ended(t, t.h.run())
    assert {key: done.get(key) for key in expected} == expected


def test_without_result_json_a_task_with_outputs_failed_to_upload(make_task: TaskFactory) -> None:
    t = Task(agent_task(make_task, maxAttempts=2))
    t.running()
    read_result(t)
    t.h.activity_completed(names.READ_ATTEMPT_RESULT, {"found": False})
    done = ended(t, t.h.run())
    assert (done["state"], done["failureCategory"], done["exitCode"]) == ("Failed", "fileUploadError", 0)
    assert "the agent recorded no result" in done["error"]


@pytest.mark.parametrize(("exit_code", "state"), [(0, "Succeeded"), (2, "Failed")])
def test_without_result_json_a_task_without_outputs_ends_by_its_containers_exit_code(
    make_task: TaskFactory, exit_code: int, state: str
) -> None:
    t = Task(agent_task(make_task, outputs=False, maxAttempts=1))
    t.running()
    read_result(t, replace(GROUP_ENDED, exit_code=exit_code, state="Succeeded" if exit_code == 0 else "Failed"))
    t.h.activity_completed(names.READ_ATTEMPT_RESULT, {"found": False})
    done = ended(t, t.h.run())
    assert (done["state"], done["exitCode"]) == (state, exit_code)
    assert "failureCategory" not in done


def test_a_report_that_came_in_while_the_group_was_read_is_heard_before_result_json(make_task: TaskFactory) -> None:
    # The task's report arrives while the poll reads the ended group: it is kept, and result.json is read.
    t = Task(agent_task(make_task))
    t.running()
    polling(t, *polled(t, TASK_EXITED))
    t.h.timer_fired()
    assert t.h.run().keys == [activity(names.GET_GROUP_STATE)]
    t.h.event(CALLBACK, report("succeeded", 1, exitCode=0, result={"late": True}))
    t.h.activity_completed(names.GET_GROUP_STATE, GROUP_ENDED.to_dict())
    assert t.h.run().keys == [READ_RESULT]
    found = {"found": True, "exitCode": 0, "failure": None, "outputs": {"count": 1, "bytes": 1}}
    t.h.activity_completed(names.READ_ATTEMPT_RESULT, found)
    done = ended(t, t.h.run())
    assert (done["state"], done["result"]) == ("Succeeded", {"late": True})


def test_the_agents_report_that_came_in_while_the_group_was_read_spares_the_read(make_task: TaskFactory) -> None:
    t = Task(agent_task(make_task))
    t.running()
    t.h.timer_fired()
    assert t.h.run().keys == [activity(names.GET_GROUP_STATE)]
    t.h.event(CALLBACK, completed(1))
    t.h.activity_completed(names.GET_GROUP_STATE, GROUP_ENDED.to_dict())
    assert ended(t, t.h.run())["state"] == "Succeeded"


def test_a_stale_attempts_agent_report_never_ends_the_next_attempt(make_task: TaskFactory) -> None:
    t = Task(agent_task(make_task, maxAttempts=2))
    t.running()
    t.h.event(CALLBACK, completed(1, 3))  # exit 3: attempt 2 follows
    next_attempt(t)
    # Attempt 1's sidecar reports again (its retry): it must not end attempt 2, nor its user's report count.
    at = t.h.now
    t.h.event(CALLBACK, {**completed(1), "outputs": {"count": 9, "bytes": 9}})
    listening(t, t.h.run(), at)
    at = t.h.now
    t.h.event(CALLBACK, report("succeeded", 1, exitCode=0, result={"from": 1}))
    listening(t, t.h.run(), at)
    t.h.event(CALLBACK, completed(2))
    done = ended(t, t.h.run(), attempt=2)
    assert (done["state"], done["attempts"], done["result"]) == ("Succeeded", 2, None)


def test_a_task_without_the_agent_ignores_a_completed_report(make_task: TaskFactory) -> None:
    t = Task(make_task())
    t.running()
    at = t.h.now
    t.h.event(CALLBACK, completed(1, 0, UPLOAD_REFUSED))
    listening(t, t.h.run(), at)
    t.h.event(CALLBACK, report("succeeded", 1, exitCode=0))
    assert t.h.run().keys == [RESERVE_DELETE]


def test_the_tasks_report_survives_a_continue_as_new(make_task: TaskFactory) -> None:
    t = Task(agent_task(make_task))
    t.running()
    t.h.event(CALLBACK, report("succeeded", 1, exitCode=0, result={"rows": 10}))
    t.h.run()
    while poll_once(t) != [continue_as_new()]:
        pass
    assert t.h.last is not None
    assert t.h.last.continued_with["resume"]["userReport"]["result"] == {"rows": 10}
    next_generation(t)
    t.h.event(CALLBACK, completed(1))
    done = ended(t, t.h.run())
    assert (done["state"], done["result"]) == ("Succeeded", {"rows": 10})


def test_the_group_has_ended_once_no_container_runs_though_its_state_says_running(make_task: TaskFactory) -> None:
    t = Task(agent_task(make_task))
    t.running()
    read_result(t, replace(TASK_EXITED, sidecars_active=False))
    t.h.activity_completed(names.READ_ATTEMPT_RESULT, {"found": True, "exitCode": 0, "failure": None})
    assert ended(t, t.h.run())["state"] == "Succeeded"
