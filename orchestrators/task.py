"""Task orchestrator: one task's life through attempts, each attempt one ACI container group.

Per attempt: take a capacity lease (waiting on `CapacityGranted` raced with a back-off timer; the first attempt
asks in the same round trip as registering at the job), wait for the lease's create slot (ACI's create rate),
create the group, race the signed callback against a poll timer until the task timeout, decide with
`acibatch.policy.decide`, clean the group up, release the lease and record usage.

No single failure ends more than this task, and nothing it holds outlives it: an activity or entity call that
fails is an observation the policy decides on (a create error, an unreadable group) or, past that, a failed
task whose group is cleaned up and whose lease is released (`run`). Histories stay bounded: every
WAITS_PER_GENERATION waits the orchestration continues as new with a `TaskCheckpoint`, and when it ends it
continues once more so the final record is the last generation's input and the chunk hears only the outcome.

This module is the life's outline; its parts are `task_run` (state, waiting), `task_admission` (the lease),
`task_attempt` (create and watch), `task_cleanup` (stop, delete, fail safely) and `task_generations`.
"""

from __future__ import annotations

import functools
from typing import Any

import azure.durable_functions as df

from acibatch import durable_names as names
from acibatch.checkpoint import Phase, TaskStart, attempt_state
from acibatch.messages.capacity import AcquireAnswer, Grant
from acibatch.messages.progress import CancelMark
from acibatch.naming import container_group_name
from acibatch.policy import Next
from acibatch.records import TaskRecord, TaskState
from orchestrators import bp, calls
from orchestrators.calls import Steps
from orchestrators.inputmemo import InputMemo
from orchestrators.task_admission import acquire, lease_ask, release
from orchestrators.task_attempt import CALLBACK_GRACE_SECONDS, run_attempt
from orchestrators.task_cleanup import fail_safely
from orchestrators.task_generations import ContinueAsNew
from orchestrators.task_run import TaskRun, failure_text

# The grace is read by the orchestrator tests; the cancel text by the chunk (`orchestrators.job`).
__all__ = ["CALLBACK_GRACE_SECONDS", "CANCELLED_BEFORE_START", "task_orchestrator"]

# Why a task of a job that was stopping before it began ends Cancelled; a chunk says it of a task it never starts.
CANCELLED_BEFORE_START = "the job was cancelled before this task started"
# Every episode starts here again: the input (task, checkpoint, record) is parsed once per worker, not per episode.
TASK_STARTS = InputMemo(TaskStart.from_input)
# A pure function of its arguments (a regex and a hash), called again for every attempt on every replay.
group_name = functools.lru_cache(maxsize=4096)(container_group_name)


def run_task(task_run: TaskRun) -> Steps[None]:
    """The whole life, and what happens when something in it fails."""
    context = task_run.context
    try:
        record = yield from lifecycle(task_run)
    except ContinueAsNew as moving_on:
        context.continue_as_new(moving_on.start.to_dict())
        return None
    except Exception as exc:  # past the policy's reach: end this task (never the job) and give back what it holds
        record = yield from fail_safely(task_run, f"the task failed: {failure_text(exc)}")
    context.continue_as_new(TaskStart(task_run.task, final=record, handovers=tuple(task_run.handovers)).to_dict())
    return None


def lifecycle(run: TaskRun) -> Steps[TaskRecord]:
    context, task = run.context, run.task
    answer: AcquireAnswer | None = None
    if run.resumed is None:
        # Register with the job and ask for the first lease at once: one round trip instead of two, which is
        # seconds when a thousand tasks start together. A task of a cancelled job gives the lease straight back.
        begun, acquired = yield context.task_all([
            calls.begin(context, task.progress_key, task.task_id),
            calls.acquire(context, lease_ask(run)),
        ])  # fmt: skip
        answer = None if acquired is None else AcquireAnswer.parse(acquired)
        if CancelMark.parse(begun).cancelled:
            if answer is not None and answer.status is not Grant.REJECTED:
                yield from release(run)
            return run.finish(TaskState.CANCELLED, CANCELLED_BEFORE_START)
        phase = Phase.QUEUED
        start_attempt(run)
    else:
        phase = run.resumed.phase
        context.set_custom_status(run.record.live_status())
        # Events raised while the orchestration switched generations may be lost; the job's cancel mark is not.
        run.cancelled = CancelMark.parse((yield calls.read_cancel_mark(context, task.progress_key))).cancelled
    while True:
        if phase is Phase.QUEUED:
            refusal = yield from acquire(run, answer)
            answer = None
            if refusal is not None:
                return run.finish(TaskState.CANCELLED if run.cancelled else TaskState.FAILED, refusal)
            run.state = attempt_state(task, run.attempt, run.priority, run.record.platform_retries)
            run.publish(attempts=run.attempt, pending_reason=None)
            phase = Phase.CREATE
        decision, result = yield from run_attempt(run, phase)
        yield from release(run)
        if decision.dependency_action is not None or decision.job_action is not None:
            # An exit condition decided the task's end: its dependents and its job act on what it said.
            run.publish(dependency_action=decision.dependency_action, job_action=decision.job_action)
        if decision.failure_category is not None and decision.next is Next.FAIL:
            run.publish(failure_category=decision.failure_category)  # Batch's category: a file did not move
        if decision.next is Next.SUCCEED:
            run.publish(result=result)
            return run.finish(TaskState.SUCCEEDED)
        if decision.next is Next.CANCEL:
            return run.finish(TaskState.CANCELLED, decision.reason)
        if decision.next is not Next.NEW_ATTEMPT:
            return run.finish(TaskState.FAILED, decision.reason)
        run.publish(error=decision.reason)
        if decision.platform:  # shown on the task, and never counted against maxAttempts
            run.publish(platform_retries=run.record.platform_retries + 1)
        run.attempt, run.priority = run.attempt + 1, decision.next_priority
        start_attempt(run)
        run.report_state(TaskState.QUEUED)  # back in the queue until the next attempt gets a lease
        phase = Phase.QUEUED


def start_attempt(run: TaskRun) -> None:
    run.group, run.deadline, run.create_at, run.capacity_waits = None, None, 0.0, 0
    run.user_report = None
    name = group_name(run.task.tenant, run.task.job_id, run.task.task_id, run.attempt)
    run.publish(state=TaskState.QUEUED, attempt=run.attempt, group_name=name, exit_code=None)


def final_outcome(final: TaskRecord) -> dict[str, Any]:
    """What the chunk hears of a finished task; an exit condition's decision (dependents, terminate) only when
    there was one."""
    outcome = {"id": final.id, "state": str(final.state)}
    if final.dependency_action is not None:
        outcome["dependencyAction"] = final.dependency_action
    if final.job_action is not None:
        outcome["jobAction"] = final.job_action
    return outcome


@bp.orchestration_trigger(context_name="context", orchestration=names.TASK_ORCHESTRATOR)
def task_orchestrator(context: df.DurableOrchestrationContext) -> Steps[Any]:
    start = TASK_STARTS(context)
    if start.final is not None:
        # The last generation: the full record stays here (the API reads it); the chunk receives only the outcome.
        context.set_custom_status(start.final.live_status())
        return final_outcome(start.final)
    return (yield from run_task(TaskRun(context, start)))
