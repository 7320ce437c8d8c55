"""Job orchestrator and its chunk orchestrators: fan a job out to one task orchestration per task.

The job starts one chunk per ~sqrt(n) tasks (10 to 100) and each chunk starts its tasks, so every history grows
with about sqrt(n), not n (the SDK replays a whole history on each episode). The job waits for every chunk,
a cancel request or its own timeout; on cancel or timeout it tells every task to stop and still waits for
them, so it never finishes while a container group of its own is alive.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Generator
from datetime import timedelta
from typing import Any

import azure.durable_functions as df

from acibatch import durable_names as names
from acibatch.plan import JobInput, chunk_instance_id, chunk_ranges, task_inputs
from acibatch.records import JobState, TaskState, job_state_from_counts
from orchestrators import bp

Steps = Generator[Any, Any, Any]

NOTIFY_RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=5_000, max_number_of_attempts=5)


def _slice_spec(spec: dict[str, Any], first: int, count: int) -> dict[str, Any]:
    return {**spec, "tasks": spec["tasks"][first : first + count]}


@bp.orchestration_trigger(context_name="context", orchestration=names.JOB_ORCHESTRATOR)
def job_orchestrator(context: df.DurableOrchestrationContext) -> Steps:
    job = JobInput.from_dict(context.get_input())
    spec = job.job_spec()
    tenant = df.EntityId(names.TENANT_ENTITY, job.tenant)
    progress = df.EntityId(names.PROGRESS_ENTITY, job.progress_key)
    started_at = context.current_utc_datetime.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    yield context.call_entity(progress, "init", {"total": len(spec.tasks)})
    context.signal_entity(tenant, "update_job", {"jobId": job.job_id, "state": str(JobState.RUNNING)})
    context.set_custom_status({"phase": "running", "startedAt": started_at})

    spec_dict = dict(job.spec)
    chunks = [
        context.call_sub_orchestrator(
            names.CHUNK_ORCHESTRATOR,
            {"job": {**job.to_dict(), "spec": _slice_spec(spec_dict, first, count)}},
            chunk_instance_id(job.tenant, job.job_id, number),
        )
        for number, (first, count) in enumerate(chunk_ranges(len(spec.tasks)))
    ]
    all_chunks = context.task_all(chunks)
    cancel_waiter = context.wait_for_external_event(names.EVENT_CANCEL)
    waits = [all_chunks, cancel_waiter]
    timeout = None
    if spec.job_timeout_seconds is not None:
        timeout = context.create_timer(context.current_utc_datetime + timedelta(seconds=spec.job_timeout_seconds))
        waits.append(timeout)

    # The first cause to win decides how the job ends. Once a cancel or the timeout has won, the job is already
    # stopping every task, so a later cause changes no task's outcome and is not reported: cancel then timeout
    # ends Cancelled ("cancelled on request", what the user asked for), timeout then cancel ends Failed with the
    # timeout error (the job had already run out of time when the user asked).
    winner = yield context.task_any(waits)
    cancelled = winner is cancel_waiter
    error = None
    if winner is not all_chunks:
        error = (
            "cancelled on request"
            if cancelled
            else f"the job ran longer than jobTimeoutSeconds={spec.job_timeout_seconds}"
        )
        context.set_custom_status({"phase": "cancelling", "startedAt": started_at, "reason": error})
        # Mark the job cancelled before telling running tasks, so a task that starts afterwards sees the mark.
        yield context.call_entity(progress, "cancel")
        yield context.call_activity(names.CANCEL_TASKS, {"tenant": job.tenant, "jobId": job.job_id})
        yield all_chunks
    # The timeout may have fired meanwhile (it won, or it passed while the job drained after a cancel). The SDK
    # refuses to cancel a completed timer: it raises, and that would fail the orchestration after its tasks had
    # stopped. A timer that has fired needs no cancelling.
    if timeout is not None and not timeout.is_completed:
        timeout.cancel()

    counts: Counter[str] = Counter({str(state): 0 for state in TaskState})
    for chunk_counts in all_chunks.result:
        counts.update(chunk_counts)
    state = job_state_from_counts(counts, finished=True, cancelled=cancelled)
    if state is JobState.SUCCEEDED:
        # The timeout fired, but every task had succeeded before the stop reached it: the timeout changed no
        # outcome, so (as above) it is not reported, rather than a Succeeded job carrying an error.
        error = None
    finished_at = context.current_utc_datetime.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    output = {
        "state": str(state),
        "counts": dict(counts),
        "startedAt": started_at,
        "finishedAt": finished_at,
        "error": error,
    }
    context.signal_entity(tenant, "update_job", {"jobId": job.job_id, "state": str(state), "finishedAt": finished_at})
    if spec.notify_url:
        notification = {"jobId": job.job_id, "tenant": job.tenant, **output}
        try:
            sent = yield context.call_activity_with_retry(
                names.NOTIFY_JOB, NOTIFY_RETRY, {"url": spec.notify_url, "body": notification}
            )
        except Exception as exc:  # the job's outcome stands even when its webhook is down
            output["notifyError"] = str(exc)[:500]
        else:
            if isinstance(sent, dict) and sent.get("refused"):  # the outbound guard's refusal: never retried
                output["notifyError"] = str(sent["refused"])[:500]
    return output


@bp.orchestration_trigger(context_name="context", orchestration=names.CHUNK_ORCHESTRATOR)
def chunk_orchestrator(context: df.DurableOrchestrationContext) -> Steps:
    job = JobInput.from_dict(context.get_input()["job"])
    spec = job.job_spec()
    tasks = task_inputs(job, spec, 0, len(spec.tasks))
    results = yield context.task_all(
        [context.call_sub_orchestrator(names.TASK_ORCHESTRATOR, task.to_dict(), task.instance_id) for task in tasks]
    )
    return dict(Counter(result["state"] for result in results))
