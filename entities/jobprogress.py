"""`jobprogress` entity (one per job): live task states for counts, and the job's cancel mark.

Task orchestrations call `begin` before they take a lease: the answer says whether the job was cancelled,
so a task that starts after a cancel never creates a container group. Every task reports here two or three
times, so the state (one letter per task) is stored as text through `acibatch.entitystate`.
"""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df

from acibatch import durable_names as names
from acibatch.entitystate import KeptState
from acibatch.records import JobProgress, TaskState
from entities import bp

STORED = KeptState(JobProgress.from_dict, JobProgress.to_dict)


def apply(progress: JobProgress, operation: str, data: Any) -> Any:
    if operation == "init":
        progress.total = int(data["total"])
        return None
    if operation == "begin":
        progress.set_task(str(data), TaskState.QUEUED)
        return {"cancelled": progress.cancelled}
    if operation == "set":
        progress.set_task(str(data["taskId"]), TaskState(data["state"]))
        return None
    if operation == "set_many":  # a workflow's tasks that ended without running (Skipped), with reasons
        progress.end_unrun([str(item) for item in data["taskIds"]], TaskState(data["state"]), list(data["reasons"]))
        return None
    if operation == "cancelled":  # a read: whether the job was cancelled
        return {"cancelled": progress.cancelled}
    if operation == "cancel":
        progress.cancelled = True
        return None
    raise ValueError(f"jobprogress entity has no operation '{operation}'")


@bp.entity_trigger(context_name="context", entity_name=names.PROGRESS_ENTITY)
def jobprogress(context: df.DurableEntityContext) -> None:
    progress = STORED.load(context)
    result = apply(progress, context.operation_name, context.get_input())
    STORED.store(context, progress)
    context.set_result(result)
