"""Stopping a job's tasks on cancel or timeout, without letting a failure there fail the job."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import azure.durable_functions as df

from acibatch import durable_names as names

Steps = Generator[Any, Any, Any]

STOP_RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=5_000, max_number_of_attempts=4)


def stop_tasks(context: df.DurableOrchestrationContext, progress: df.EntityId, tenant: str, job_id: str) -> Steps:
    """Mark the job cancelled, then tell its running tasks to stop; returns an error text, or None.

    The mark comes first, so a task that starts afterwards sees it. Either step can fail (a storage hiccup while
    the activity reads the job's progress); the job then still waits for its tasks and ends normally: tasks that
    were not told stop at their own timeouts, and a task that starts later still sees the mark if it was set."""
    problems = []
    try:
        yield context.call_entity(progress, "cancel")
    except Exception as exc:
        problems.append(f"marking the job cancelled failed: {str(exc)[:300]}")
    try:
        yield context.call_activity_with_retry(names.CANCEL_TASKS, STOP_RETRY, {"tenant": tenant, "jobId": job_id})
    except Exception as exc:
        problems.append(f"telling its tasks to stop failed: {str(exc)[:300]}")
    return "; ".join(problems) or None
