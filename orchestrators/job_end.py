"""How every job ends, whichever orchestrator ran its tasks: its output, the tenant's record and the webhook."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import azure.durable_functions as df

from acibatch.messages.jobs import Notification, NotifyResult
from acibatch.messages.tenant import JobUpdate
from acibatch.plan import JobInput
from acibatch.records import JobState, TaskState, job_state_from_counts
from acibatch.spec import JobSpec
from orchestrators import calls
from orchestrators.calls import Steps

NOTIFY_RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=5_000, max_number_of_attempts=5)


def iso_now(context: df.DurableOrchestrationContext) -> str:
    text: str = context.current_utc_datetime.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return text


def zero_counts() -> dict[str, int]:
    return {str(state): 0 for state in TaskState}


def finish_job(
    context: df.DurableOrchestrationContext,
    job: JobInput,
    spec: JobSpec,
    counts: Mapping[str, int],
    *,
    cancelled: bool,
    error: str | None,
    started_at: str,
    extra: Mapping[str, Any] | None = None,
) -> Steps[dict[str, Any]]:
    """Decide the job's state from its counts, tell the tenant entity, send the webhook; returns the output."""
    state = job_state_from_counts(counts, finished=True, cancelled=cancelled)
    if state is JobState.SUCCEEDED:
        # A timeout (or a terminate) that changed no outcome is not reported: a Succeeded job carries no error.
        error = None
    finished_at = iso_now(context)
    output: dict[str, Any] = {
        "state": str(state),
        "counts": dict(counts),
        "startedAt": started_at,
        "finishedAt": finished_at,
        "error": error,
        **(extra or {}),
    }
    calls.update_job(context, job.tenant, JobUpdate(job.job_id, str(state), finished_at))
    if spec.notify_url:
        notification = {"jobId": job.job_id, "tenant": job.tenant, **output}
        try:
            sent = yield calls.notify_job(context, NOTIFY_RETRY, Notification(spec.notify_url, notification))
        except Exception as exc:  # the job's outcome stands even when its webhook is down
            output["notifyError"] = str(exc)[:500]
        else:
            refused = NotifyResult.parse(sent).refused
            if refused is not None:  # the outbound guard's refusal: never retried
                output["notifyError"] = refused[:500]
    return output
