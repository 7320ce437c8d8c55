"""Stopping a job's tasks on cancel or timeout, without letting a failure there fail the job."""

from __future__ import annotations

import azure.durable_functions as df

from acibatch.messages.jobs import JobRef
from orchestrators import calls
from orchestrators.calls import Steps

STOP_RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=5_000, max_number_of_attempts=4)


def stop_tasks(
    context: df.DurableOrchestrationContext, progress_key: str, tenant: str, job_id: str
) -> Steps[str | None]:
    """Mark the job cancelled, then tell its running tasks to stop; returns an error text, or None.

    The mark comes first, so a task that starts afterwards sees it. Either step can fail (a storage hiccup while
    the activity reads the job's progress); the job then still waits for its tasks and ends normally: tasks that
    were not told stop at their own timeouts, and a task that starts later still sees the mark if it was set."""
    problems = []
    try:
        yield calls.mark_cancelled(context, progress_key)
    except Exception as exc:
        problems.append(f"marking the job cancelled failed: {str(exc)[:300]}")
    try:
        yield calls.cancel_tasks(context, STOP_RETRY, JobRef(tenant, job_id))
    except Exception as exc:
        problems.append(f"telling its tasks to stop failed: {str(exc)[:300]}")
    return "; ".join(problems) or None
