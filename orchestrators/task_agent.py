"""The end of an attempt run with the acibatch agent (`TaskInput.agent`): the agent's word ends it, not the task's.

In such a group the task's command is wrapped and a sidecar saves its whole logs, then uploads its outputs, writes
result.json and reports `completed`. So the task's own `succeeded`/`failed` report is kept (its result, message and
exit code) but ends nothing: the outputs are still being uploaded. The agent's report ends the attempt; if it never
arrives, the poll does once the whole group has ended, from result.json (`read_attempt_result`). Without one the
attempt failed to upload if it had outputFiles (`fileUploadError`: nothing says they were uploaded), else the task
container's own exit decides, as for a task without the agent. Either way the decision is the same function of the
same facts (`outcome`): a file failure first, then the task's own report, then the command's exit code.

Time: taskTimeoutSeconds bounds the command, not the uploads after it. Once a poll sees the task container
terminated (one last look at the timeout catches a command that ended since the poll before) the attempt's deadline
moves to UPLOAD_GRACE_SECONDS after that moment (never earlier than the timeout); the attempt's SAS last as long
(`acibatch.blobstore.sas.UPLOAD_GRACE`). The task's own terminal report does not start the grace: a task may
report long before its command exits, and one still running at the timeout times out whatever it reported. A
sidecar that has not reported by the end of the grace times out with a message saying the uploads did.

The grace is for uploads only. A command that runs again after it had ended (ACI restarted the container, our
restart in place, a re-create) loses the grace until it ends anew, and is still bound by the timeout: the watch
wakes at the timeout even during a grace, a task container at work then times out, and past the timeout nothing
restarts the command in place or waits for one that has not ended (`waits_past_timeout`).

Tasks without the agent never come here, so their histories stay as they were.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from acibatch.aci import TERMINATED, GroupState
from acibatch.callbacks import CallbackReport, CallbackStatus, FileFailure
from acibatch.messages.aci import AttemptRef, AttemptResult
from acibatch.policy import UPLOAD_GRACE_SECONDS, Decision, GroupAction, Next, Observation, ObservationKind
from acibatch.records import FailureCategory
from orchestrators import calls
from orchestrators.calls import Steps
from orchestrators.task_run import TaskRun

# A group's `instanceView.state` once every container in it has terminated (Running while any still runs).
GROUP_ENDED_STATES = frozenset({"Succeeded", "Failed", "Stopped"})
NO_RESULT = "the agent recorded no result, so the outputs cannot be known to be uploaded"
TERMINAL = (CallbackStatus.SUCCEEDED, CallbackStatus.FAILED)

# What an attempt's watch learned (as in task_attempt): an observation to decide on and the task's result.
News = tuple[Observation | None, Any]


def outcome(
    exit_code: int | None,
    failure: FileFailure | None,
    user: CallbackReport | None,
    ended: Observation | None = None,
) -> Observation:
    """What the attempt's end means, from the agent's facts (the command's exit code, a file failure), the task's
    own terminal report and, when the agent recorded nothing, the group's view of the task container (`ended`)."""
    if failure is not None:
        kind = (
            ObservationKind.PRE_PROCESSING_ERROR
            if failure.category is FailureCategory.PRE_PROCESSING_ERROR
            else ObservationKind.FILE_UPLOAD_ERROR
        )
        return Observation(kind=kind, exit_code=exit_code, message=failure.describe())
    if user is not None:
        # As without the agent: the task's report decides with the exit code it gave (or none).
        kind = (
            ObservationKind.CALLBACK_SUCCEEDED
            if user.status is CallbackStatus.SUCCEEDED
            else ObservationKind.CALLBACK_FAILED
        )
        return Observation(kind=kind, exit_code=user.exit_code, message=user.message)
    if ended is not None:
        return ended
    return Observation(kind=ObservationKind.EXITED, exit_code=exit_code)


def ended_by(
    run: TaskRun, exit_code: int | None, failure: FileFailure | None, ended: Observation | None = None
) -> News:
    """The attempt is over: its observation, and the result the task reported (kept from its own report)."""
    if exit_code is not None:
        run.publish(exit_code=exit_code)  # the command's own code, even when the task reported none
    user = run.user_report
    return outcome(exit_code, failure, user, ended), None if user is None else user.result


def agent_report(run: TaskRun, report: CallbackReport) -> News:
    """A report of this attempt that only an agent task acts on: the agent's `completed` (ends the attempt) or the
    task's own terminal report (kept; the first one counts, as it would have ended the attempt)."""
    if not run.task.agent:
        return None, None  # no agent runs in this group: a `completed` report is not its own and changes nothing
    run.heard_from = run.attempt
    if report.status is CallbackStatus.COMPLETED:
        return ended_by(run, report.exit_code, report.failure)
    if run.user_report is None:
        run.user_report = report
    # No upload grace yet: a task may report long before its command exits, and the grace counts from the exit.
    return None, None


def start_upload_grace(run: TaskRun) -> None:
    """The command has ended: give the sidecar UPLOAD_GRACE_SECONDS from now to save the logs and upload the
    outputs, even past taskTimeoutSeconds (never less time than the timeout left). Once per end of the command:
    later signs of the same end move nothing, so the grace is a bound (a command that runs again clears it)."""
    if run.upload_deadline is not None or run.deadline is None:
        return
    run.upload_deadline = max(run.deadline, run.now + timedelta(seconds=UPLOAD_GRACE_SECONDS))


def timed_out(run: TaskRun, seen: str | None = None) -> Observation:
    """The attempt's time is up: the command's (taskTimeoutSeconds) or, once it had ended, the uploads'. `seen`:
    what the last look found instead of an end (a container waiting to start again, say)."""
    if run.upload_deadline is not None and run.now >= run.upload_deadline:
        message = (
            f"the uploads timed out: the agent had not saved the logs and uploaded the outputs "
            f"{UPLOAD_GRACE_SECONDS} s after the command ended"
        )
    else:
        message = f"the task ran longer than taskTimeoutSeconds={run.task.task_timeout_seconds}"
    if seen:
        message = f"{message}; at the timeout: {seen}"
    return Observation(kind=ObservationKind.TIMED_OUT, message=message)


def uploading(run: TaskRun) -> bool:
    """Whether the command has ended and its uploads have their grace."""
    return run.upload_deadline is not None


def time_limit(run: TaskRun) -> datetime:
    """Until when the watch waits: the command's deadline, and once that has passed with the command ended, its
    uploads' deadline. Before the deadline a grace does not move the wake-up, so a command that runs again after
    it had ended is looked at when its time is up."""
    assert run.deadline is not None
    if run.upload_deadline is not None and run.now >= run.deadline:
        return run.upload_deadline
    return run.deadline


def waits_past_timeout(run: TaskRun, decision: Decision) -> bool:
    """Whether `decision` keeps an agent task's attempt going past its command's timeout in a way the timeout
    forbids: a restart in place (the command would run again), or any wait but that for the uploads of a command
    seen ended (an interrupted group, a container waiting to start again). Tasks without the agent keep the
    decisions they always had (their histories must replay)."""
    if not run.task.agent or decision.next is not Next.WAIT or run.deadline is None or run.now < run.deadline:
        return False
    return decision.group_action is GroupAction.RESTART_IN_PLACE or not uploading(run)


def group_ended(state: Mapping[str, Any]) -> bool:
    """Whether every container of the group has terminated, the agent's sidecar included: the group says so, or
    the task container has and no other container is still at work."""
    group = GroupState.from_dict(state)
    return group.state in GROUP_ENDED_STATES or (group.container_state == TERMINATED and not group.sidecars_active)


def from_result(run: TaskRun, exited: Observation) -> Steps[News]:
    """The poll's backstop once the group has ended: what result.json says, else what its absence means."""
    task = run.task
    ref = AttemptRef(task.tenant, task.job_id, task.task_id, run.attempt)
    result = AttemptResult.parse((yield calls.read_attempt_result(run.context, ref)))
    if result.found:
        # No exit code and no failure: the agent saw the command end without its exit record (the wrapper was
        # killed); ACI's exit code for the task container is then what is known (137 on Spot reads as an eviction).
        code = result.exit_code if result.exit_code is not None or result.failure else exited.exit_code
        return ended_by(run, code, result.failure)
    if task.output_files:
        return ended_by(run, exited.exit_code, FileFailure(FailureCategory.FILE_UPLOAD_ERROR, NO_RESULT))
    return ended_by(run, exited.exit_code, None, ended=exited)
