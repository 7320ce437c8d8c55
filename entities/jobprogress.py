"""`jobprogress` entity (one per job): live task states for counts, and the job's cancel mark.

Task orchestrations call `begin` before they take a lease: the answer says whether the job was cancelled,
so a task that starts after a cancel never creates a container group. Every task reports here two or three
times, so the state (one letter per task) is stored as text through `acibatch.entitystate`.
"""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df

from acibatch import durable_names as names
from acibatch.durable_names import ProgressOp
from acibatch.entitystate import KeptState
from acibatch.messages.progress import CancelMark, ProgressInit, TaskStateReport, UnrunTasks
from acibatch.records import JobProgress, TaskState
from entities import bp

STORED = KeptState(JobProgress.from_dict, JobProgress.stored_json)


def apply(progress: JobProgress, operation: str, data: Any) -> Any:
    if operation == ProgressOp.INIT:
        progress.total = ProgressInit.parse(data).total
        return None
    if operation == ProgressOp.BEGIN:  # the input is the bare task id
        progress.set_task(str(data), TaskState.QUEUED)
        return CancelMark(progress.cancelled).to_dict()
    if operation == ProgressOp.SET:
        report = TaskStateReport.parse(data)
        progress.set_task(report.task_id, report.state)
        return None
    if operation == ProgressOp.SET_MANY:
        unrun = UnrunTasks.parse(data)
        progress.end_unrun(list(unrun.task_ids), unrun.state, list(unrun.reasons))
        return None
    if operation == ProgressOp.CANCELLED:  # a read: whether the job was cancelled
        return CancelMark(progress.cancelled).to_dict()
    if operation == ProgressOp.CANCEL:
        progress.cancelled = True
        return None
    raise ValueError(f"jobprogress entity has no operation '{operation}'")


@bp.entity_trigger(context_name="context", entity_name=names.PROGRESS_ENTITY)
def jobprogress(context: df.DurableEntityContext) -> None:
    progress = STORED.load(context)
    result = apply(progress, context.operation_name, context.get_input())
    STORED.store(context, progress)
    context.set_result(result)
