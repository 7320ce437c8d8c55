"""Reads of a job's task records; a page of them reads a task's orchestration only when its record can change.

A read of a job shows a page of its tasks, and each task's record lives in its own orchestration: one status read
per task, the bulk of a job read's cost and of its wait on a busy host. Two kinds of task need no read:

- while the job runs, a task its progress entity has not heard of has not begun (a task calls the entity's `begin`
  before it publishes any record; the orchestration may not even exist yet): its record is the empty queued one,
  which is what the status read would give. Once the job has ended every task is read: a task orchestration that
  failed or was terminated before its `begin` reached the entity has no letter there, and must show as failed;
- a task its job ended without starting it, with a reason of its own (a stopping job's chunk never started it, a
  workflow skipped it after an upstream task): the progress entity holds why (`JobProgress.reasons`), and the task
  has no orchestration, so a read would be a 404 giving the empty queued record, which is what it is answered with
  (`unrun_view` then shows how it ended). A cancelled 10,000-task job is mostly such tasks. A stopped workflow's
  unreleased tasks are recorded without a reason each (the job's error says why), so they are still read;
- a task whose orchestration has Completed holds its final record in its last generation's input, and a completed
  generation never changes: it is kept per worker process and shown again without a read. It is kept only when the
  task orchestration was created no earlier than the job instance (both as the status API gives them, in whole
  seconds), so a restarted or resubmitted job never keeps an earlier run's record; the entry is keyed by the job
  instance's creation time as well. Only Completed is kept: a Failed orchestration can still be rewound.

So a page costs a read per task in flight, at most the job's running tasks, whatever the job's size.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import azure.durable_functions as df

from acibatch.naming import job_instance_id, task_instance_id
from acibatch.records import JobProgress, TaskRecord, TaskState
from api.common import TERMINAL, runtime_of
from api.statusreads import InstanceStatus, read_status

RECORDS_KEPT = 10_000  # finished task records kept per worker process, at most ...
TEXT_KEPT = 16 * 1024 * 1024  # ... and this much of their size: a record may hold a 16 KB log tail and a result
ENTRY_OVERHEAD = 1536  # what a kept record costs beyond its JSON (the model, its dict, the key), measured
READS_IN_PARALLEL = 16


class FinishedRecords:
    """Records of tasks whose orchestration has Completed, least recently used first, bounded by count and by the
    size of their JSON (a count alone could hold gigabytes of log tails)."""

    def __init__(self, kept: int = RECORDS_KEPT, text_kept: int = TEXT_KEPT) -> None:
        self.kept, self.text_kept, self.text = kept, text_kept, 0
        self.entries: OrderedDict[tuple[str, str, str], tuple[TaskRecord, int]] = OrderedDict()

    def get(self, job_instance: str, job_created: str, task_id: str) -> TaskRecord | None:
        key = (job_instance, job_created, task_id)
        entry = self.entries.get(key)
        if entry is None:
            return None
        self.entries.move_to_end(key)
        return entry[0]

    def put(self, job_instance: str, job_created: str, task_id: str, record: TaskRecord) -> None:
        key = (job_instance, job_created, task_id)
        size = len(record.model_dump_json()) + ENTRY_OVERHEAD
        if size > self.text_kept:
            return
        replaced = self.entries.pop(key, None)
        if replaced is not None:
            self.text -= replaced[1]
        self.entries[key] = (record, size)
        self.text += size
        while len(self.entries) > self.kept or self.text > self.text_kept:
            self.text -= self.entries.popitem(last=False)[1][1]


# Per worker process: the API's handlers run on the worker's event loop, one at a time between awaits.
FINISHED = FinishedRecords()

# How one task's record is read: the record, and whether it may be kept (its orchestration has Completed in this run
# of the job).
ReadRecord = Callable[[str], Awaitable[tuple[TaskRecord, bool]]]


async def page_records(
    read: ReadRecord,
    task_ids: list[str],
    progress: JobProgress,
    job: tuple[str, str],
    kept: FinishedRecords = FINISHED,
    ended: bool = False,
) -> list[TaskRecord]:
    """The records of `task_ids` (a page of job `job` = (instance id, its creation time)), in order: a task that
    has not begun and a finished task are answered without a read, the others read READS_IN_PARALLEL at a time."""
    job_instance, job_created = job
    semaphore = asyncio.Semaphore(READS_IN_PARALLEL)

    # A job's progress entity knows its task count from the job's first step; before that (or for an entity with
    # no state) it cannot say which tasks have begun, so every task is read. So is every task of an ended job.
    knows_begun = progress.total > 0 and not ended

    async def one(task_id: str) -> TaskRecord:
        if (knows_begun and not progress.has_begun(task_id)) or task_id in progress.reasons:
            return TaskRecord(id=task_id)
        found = kept.get(job_instance, job_created, task_id) if job_created else None
        if found is not None:
            return found
        async with semaphore:
            record, keep = await read(task_id)
        if keep and job_created:
            kept.put(job_instance, job_created, task_id, record)
        return record

    return list(await asyncio.gather(*(one(task_id) for task_id in task_ids)))


def unrun_view(task: dict[str, Any], progress: JobProgress) -> dict[str, Any]:
    """A task's public record, or, for a task its job ended without ever starting it (a workflow's Skipped task, or a
    task a stopping job's chunk never started: it has no orchestration, so its record reads Queued), how it ended as
    the progress entity has it, with why (`reason`)."""
    ended = progress.ended_unrun(str(task["id"])) if task.get("state") == str(TaskState.QUEUED) else None
    if ended is None or ended[0] not in (TaskState.SKIPPED, TaskState.CANCELLED):
        return task
    state, reason = ended
    return {**task, "state": str(state), **({"reason": reason} if reason else {})}


async def read_task(client: df.DurableOrchestrationClient, tenant: str, job_id: str, task_id: str) -> TaskRecord:
    return (await read_task_run(client, tenant, job_id, task_id))[0]


async def read_task_run(
    client: df.DurableOrchestrationClient, tenant: str, job_id: str, task_id: str
) -> tuple[TaskRecord, bool]:
    """The task's record, and whether it runs with the agent (stored logs, files): its input says so."""
    record, agent, _, _ = await read_task_status(client, tenant, job_id, task_id)
    return record, agent


async def read_page(
    client: df.DurableOrchestrationClient,
    job: tuple[str, str],
    status: InstanceStatus,
    progress: JobProgress,
    page: list[str],
) -> list[TaskRecord]:
    """The records of a page of job `job`'s (tenant, job id) tasks, reading only those in flight (`api.taskpage`)."""
    tenant, job_id = job
    job_created = status.created_text
    return await page_records(
        lambda task_id: read_task_ended(client, tenant, job_id, task_id, job_created),
        page,
        progress,
        (job_instance_id(tenant, job_id), job_created),
        ended=runtime_of(status) in TERMINAL,
    )


async def read_task_ended(
    client: df.DurableOrchestrationClient, tenant: str, job_id: str, task_id: str, job_created: str
) -> tuple[TaskRecord, bool]:
    """The task's record, and whether it may be kept: its orchestration has Completed (its record can no longer
    change) and was created in this run of the job (not before the job instance: a restarted or resubmitted job's
    earlier run left it)."""
    record, _, runtime, created = await read_task_status(client, tenant, job_id, task_id)
    # The status API's createdTime is one fixed ISO form ("...T12:00:00Z"), so its text orders as its time does.
    return record, runtime == "Completed" and bool(created) and created >= job_created


async def read_task_status(
    client: df.DurableOrchestrationClient, tenant: str, job_id: str, task_id: str
) -> tuple[TaskRecord, bool, str | None, str]:
    """The task's record, whether it runs with the agent, its orchestration's runtime status and creation time."""
    status = await read_status(client, task_instance_id(tenant, job_id, task_id), with_input=True)
    runtime = runtime_of(status)
    if status is None or runtime is None:
        return TaskRecord(id=task_id), False, None, ""
    stored = status.input_ if isinstance(status.input_, dict) else {}
    # A first generation's input is the bare TaskInput; later generations wrap it (`acibatch.checkpoint`).
    task = stored.get("task")
    agent = (task if isinstance(task, dict) else stored).get("agent") is True
    data = status.custom_status
    if runtime == "Completed":
        # A task ends in a last generation whose input holds its full record (`acibatch.checkpoint`); one that
        # finished before that design returned the record as its output.
        data = stored.get("final") or status.output
    record = TaskRecord.from_dict(data) if isinstance(data, dict) else TaskRecord(id=task_id)
    if runtime in {"Failed", "Terminated"} and not record.state.terminal:
        record = record.with_(state=TaskState.FAILED, error=f"task orchestration {runtime.lower()}")
    return record, agent, runtime, status.created_text
