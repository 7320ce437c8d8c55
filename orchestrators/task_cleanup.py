"""Cleanup: stop and/or delete an attempt's container group within ACI's delete windows, and the last resort
of a task that failed past the policy's reach (clean up, release, fail)."""

from __future__ import annotations

from datetime import UTC, datetime

import azure.durable_functions as df

from acibatch.messages.aci import CleanupRequest, CleanupResult
from acibatch.messages.capacity import DeleteSlotAnswer, DeleteSlotAsk
from acibatch.policy import Decision, GroupAction
from acibatch.records import TaskRecord, TaskState
from orchestrators import calls
from orchestrators.calls import Steps
from orchestrators.task_admission import release
from orchestrators.task_run import TaskRun, failure_text

CLEANUP_RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=5_000, max_number_of_attempts=3)
MAX_THROTTLED_DELETES = 10  # deletes ARM refuses with 429 before the group is left to the orphan sweep


def fail_safely(run: TaskRun, reason: str) -> Steps[TaskRecord]:
    """Clean up the current group and release the lease, each best-effort (the orphan sweep and the lease
    reconciliation heal what fails here), then fail the task with `reason`."""
    if run.group is not None:
        try:
            yield calls.cleanup_group(run.context, CLEANUP_RETRY, CleanupRequest(run.group, stop=True, delete=True))
        except Exception as exc:
            reason += f"; its container group {run.group} could not be deleted ({failure_text(exc)})"
    yield from release(run)
    return run.finish(TaskState.FAILED, reason)


def apply(run: TaskRun, decision: Decision, group: str) -> Steps[Decision]:
    """Carry out the decision's group action (stop and/or delete), keeping the log tail."""
    keep = decision.group_action is GroupAction.STOP and not decision.delete_after_stop
    stop = decision.group_action is GroupAction.STOP
    request = CleanupRequest(group, stop, delete=not keep, exit_code=run.record.exit_code, with_exit_code=True)
    cleaned = yield from cleanup(run, request)
    if cleaned.log_tail is not None:
        run.publish(log_tail=cleaned.log_tail)
    if cleaned.exit_code is not None and run.record.exit_code is None:
        run.publish(exit_code=cleaned.exit_code)
    return decision


def cleanup(run: TaskRun, request: CleanupRequest) -> Steps[CleanupResult]:
    """Stop and/or delete a group, retried. A delete waits for its slot in ACI's delete windows
    (`acibatch.armrate`) and, if ARM throttles it anyway, for its Retry-After; the group keeps its lease
    meanwhile. A group that cannot be deleted is left to the orphan sweep (its owner is finished or has moved
    on) rather than failing the task for it."""
    throttled_for = 0.0
    kept = CleanupResult()
    for _ in range(MAX_THROTTLED_DELETES):
        if request.delete:
            yield from wait_for_delete_slot(run, throttled_for)
        try:
            answer = yield calls.cleanup_group(run.context, CLEANUP_RETRY, request)
        except Exception as exc:
            note_left_behind(run, request.name, failure_text(exc))
            return kept
        cleaned = CleanupResult.parse(answer)
        if not cleaned.retry_after:
            return cleaned.over(kept)
        throttled_for = cleaned.retry_after
        request = CleanupRequest(request.name, False, request.delete, request.exit_code, request.with_exit_code)
        kept = cleaned  # stopped already; the log tail was kept in `cleaned`
    note_left_behind(run, request.name, "ARM kept throttling its delete")
    return kept


def wait_for_delete_slot(run: TaskRun, throttled_for: float) -> Steps[None]:
    """Reserve a delete slot (after ARM's Retry-After when it throttled the last try) and wait until it. Not
    `TaskRun.sleep`: after a cancel that returns at once, and the delete must still wait. Best-effort: without
    an answer the delete goes at once (ARM's 429 still holds it back)."""
    now = run.now.timestamp()
    ask = DeleteSlotAsk(now, now + throttled_for, throttled_for > 0)
    try:
        answer = DeleteSlotAnswer.parse((yield calls.reserve_delete(run.context, ask)))
    except Exception:
        answer = DeleteSlotAnswer(None)
    delete_at = max(ask.not_before, answer.at or 0.0)
    if delete_at > run.now.timestamp():
        yield run.context.create_timer(datetime.fromtimestamp(delete_at, UTC))


def note_left_behind(run: TaskRun, group: str, why: str) -> None:
    note = f"container group {group} was not cleaned up ({why}); the orphan sweep deletes it"
    run.publish(error=note if run.record.error is None else f"{run.record.error}; {note}")
