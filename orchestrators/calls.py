"""Typed Durable calls: one function per activity and entity operation an orchestrator uses.

Each builds the call with its registered name and its message's wire form, so names are never repeated as
strings at call sites, and the caller parses the result with the message type beside it:
`created = CreateResult.parse((yield calls.create_group(context, request)))`. Only the building moves here;
every call is still yielded by the orchestrator, in the same order, so histories replay unchanged.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from typing import Any, TypeAlias, TypeVar

import azure.durable_functions as df
from azure.durable_functions.models.Task import TaskBase

from acibatch import durable_names as names
from acibatch.durable_names import CapacityOp, ProgressOp, ScheduleOp, TenantOp
from acibatch.messages.aci import AttemptRef, CleanupRequest, CreateGroupInput, GroupRef
from acibatch.messages.capacity import CreateSlotAsk, DeleteSlotAsk, LeaseAsk, ReleaseAsk
from acibatch.messages.jobs import JobRef, Notification
from acibatch.messages.progress import ProgressInit, TaskStateReport, UnrunTasks
from acibatch.messages.schedule import RunRequest, WakeRecord
from acibatch.messages.tenant import JobUpdate, TaskFinished, UsageRecord
from acibatch.schedules import schedule_key

Result = TypeVar("Result")
# An orchestrator step: yields Durable tasks, is sent their results (of many types), returns `Result`.
Steps: TypeAlias = Generator[Any, Any, Result]

Context: TypeAlias = df.DurableOrchestrationContext
CAPACITY = df.EntityId(names.CAPACITY_ENTITY, names.CAPACITY_KEY)


def progress_entity(progress_key: str) -> df.EntityId:
    return df.EntityId(names.PROGRESS_ENTITY, progress_key)


def tenant_entity(tenant: str) -> df.EntityId:
    return df.EntityId(names.TENANT_ENTITY, tenant)


def schedule_entity(tenant: str, schedule_id: str) -> df.EntityId:
    return df.EntityId(names.SCHEDULE_ENTITY, schedule_key(tenant, schedule_id))


# -- capacity entity (answers: acibatch.messages.capacity) ----------------------------------------------------


def acquire(context: Context, ask: LeaseAsk) -> TaskBase:
    """Answer: `AcquireAnswer`."""
    return context.call_entity(CAPACITY, CapacityOp.ACQUIRE, ask.to_dict())


def release(context: Context, ask: ReleaseAsk) -> TaskBase:
    """Answer: `ReleaseAnswer`."""
    return context.call_entity(CAPACITY, CapacityOp.RELEASE, ask.to_dict())


def reserve_create(context: Context, ask: CreateSlotAsk) -> TaskBase:
    """Answer: `CreateSlotAnswer`."""
    return context.call_entity(CAPACITY, CapacityOp.RESERVE_CREATE, ask.to_dict())


def reserve_delete(context: Context, ask: DeleteSlotAsk) -> TaskBase:
    """Answer: `DeleteSlotAnswer`."""
    return context.call_entity(CAPACITY, CapacityOp.RESERVE_DELETE, ask.to_dict())


# -- jobprogress entity (answers: acibatch.messages.progress) -------------------------------------------------


def begin(context: Context, progress_key: str, task_id: str) -> TaskBase:
    """Register a task with its job. Answer: `CancelMark`."""
    return context.call_entity(progress_entity(progress_key), ProgressOp.BEGIN, task_id)


def read_cancel_mark(context: Context, progress_key: str) -> TaskBase:
    """Answer: `CancelMark`."""
    return context.call_entity(progress_entity(progress_key), ProgressOp.CANCELLED)


def init_progress(context: Context, progress_key: str, init: ProgressInit) -> TaskBase:
    return context.call_entity(progress_entity(progress_key), ProgressOp.INIT, init.to_dict())


def mark_cancelled(context: Context, progress_key: str) -> TaskBase:
    return context.call_entity(progress_entity(progress_key), ProgressOp.CANCEL)


def report_task_state(context: Context, progress_key: str, report: TaskStateReport) -> None:
    context.signal_entity(progress_entity(progress_key), ProgressOp.SET, report.to_dict())


def report_unrun(context: Context, progress_key: str, unrun: UnrunTasks) -> None:
    context.signal_entity(progress_entity(progress_key), ProgressOp.SET_MANY, unrun.to_dict())


# -- tenant entity --------------------------------------------------------------------------------------------


def task_finished(context: Context, tenant: str, finished: TaskFinished) -> None:
    context.signal_entity(tenant_entity(tenant), TenantOp.TASK_FINISHED, finished.to_dict())


def record_usage(context: Context, tenant: str, usage: UsageRecord) -> None:
    context.signal_entity(tenant_entity(tenant), TenantOp.RECORD_USAGE, usage.to_dict())


def update_job(context: Context, tenant: str, update: JobUpdate) -> None:
    context.signal_entity(tenant_entity(tenant), TenantOp.UPDATE_JOB, update.to_dict())


# -- schedule entity ------------------------------------------------------------------------------------------


def read_schedule(context: Context, tenant: str, schedule_id: str) -> TaskBase:
    """Answer: the stored `ScheduleState`'s dict."""
    return context.call_entity(schedule_entity(tenant, schedule_id), ScheduleOp.GET)


def record_wake(context: Context, tenant: str, schedule_id: str, record: WakeRecord) -> TaskBase:
    return context.call_entity(schedule_entity(tenant, schedule_id), ScheduleOp.RECORD, record.to_dict())


# -- activities (results: acibatch.messages.aci) --------------------------------------------------------------


def create_group(context: Context, request: CreateGroupInput) -> TaskBase:
    """Result: `CreateResult`."""
    return context.call_activity(names.CREATE_GROUP, request.to_dict())


def get_group_state(context: Context, group: GroupRef) -> TaskBase:
    """Result: `GroupStateAnswer`."""
    return context.call_activity(names.GET_GROUP_STATE, group.to_dict())


def restart_group(context: Context, group: GroupRef) -> TaskBase:
    """Result: whether the group was there to restart."""
    return context.call_activity(names.RESTART_GROUP, group.to_dict())


def read_attempt_result(context: Context, attempt: AttemptRef) -> TaskBase:
    """Result: `AttemptResult`."""
    return context.call_activity(names.READ_ATTEMPT_RESULT, attempt.to_dict())


def cleanup_group(context: Context, retry: df.RetryOptions, request: CleanupRequest) -> TaskBase:
    """Result: `CleanupResult`."""
    return context.call_activity_with_retry(names.CLEANUP_GROUP, retry, request.to_dict())


def cancel_tasks(context: Context, retry: df.RetryOptions, job: JobRef) -> TaskBase:
    """Raise `Cancel` to every task of the job that has begun and not finished. Result: how many were told."""
    return context.call_activity_with_retry(names.CANCEL_TASKS, retry, job.to_dict())


def notify_job(context: Context, retry: df.RetryOptions, notification: Notification) -> TaskBase:
    """Result: `NotifyResult`."""
    return context.call_activity_with_retry(names.NOTIFY_JOB, retry, notification.to_dict())


def run_scheduled_job(context: Context, retry: df.RetryOptions, run: RunRequest) -> TaskBase:
    """Result: `RunOutcome`."""
    return context.call_activity_with_retry(names.RUN_SCHEDULED_JOB, retry, run.to_dict())


def wake_waiters(context: Context, granted: Sequence[Mapping[str, Any]]) -> TaskBase:
    """Raise `CapacityGranted` to each granted lease's task (the leases as the capacity entity answered)."""
    return context.call_activity(names.WAKE_WAITERS, list(granted))
