"""Names shared by the Functions layers: orchestrators, activities, entities and external events.

They are part of the durable state's contract (histories refer to them by name), so renaming one strands
every in-flight instance: keep them stable.
"""

from enum import StrEnum
from typing import Final

JOB_ORCHESTRATOR: Final = "job_orchestrator"
CHUNK_ORCHESTRATOR: Final = "chunk_orchestrator"
TASK_ORCHESTRATOR: Final = "task_orchestrator"
RECLAIM_ORCHESTRATOR: Final = "reclaim_orchestrator"
# The reclaim orchestration runs as one instance at a time (the sweep starts it only when this one is not running).
RECLAIM_INSTANCE: Final = "reclaim:capacity"

CREATE_GROUP: Final = "create_group"
GET_GROUP_STATE: Final = "get_group_state"
RESTART_GROUP: Final = "restart_group"
CLEANUP_GROUP: Final = "cleanup_group"
WAKE_WAITERS: Final = "wake_waiters"
CANCEL_TASKS: Final = "cancel_tasks"
NOTIFY_JOB: Final = "notify_job"
# A task run with the acibatch agent, once its group has ended: what the agent recorded (result.json).
READ_ATTEMPT_RESULT: Final = "read_attempt_result"

CAPACITY_ENTITY: Final = "capacity"
CAPACITY_KEY: Final = "region"
TENANT_ENTITY: Final = "tenant"
PROGRESS_ENTITY: Final = "jobprogress"


class CapacityOp(StrEnum):
    """The capacity entity's operations (their messages: `acibatch.messages.capacity`)."""

    ACQUIRE = "acquire"
    RELEASE = "release"
    RESERVE_CREATE = "reserve_create"
    RESERVE_DELETE = "reserve_delete"
    SET_QUOTA = "set_quota"


class ProgressOp(StrEnum):
    """The jobprogress entity's operations (`acibatch.messages.progress`)."""

    INIT = "init"
    BEGIN = "begin"
    SET = "set"
    SET_MANY = "set_many"
    CANCELLED = "cancelled"  # a read: whether the job was cancelled
    CANCEL = "cancel"


class TenantOp(StrEnum):
    """The tenant entity's operations (`acibatch.messages.tenant`; the API sends configure and register_job)."""

    CONFIGURE = "configure"
    RECORD_USAGE = "record_usage"
    TASK_FINISHED = "task_finished"
    REGISTER_JOB = "register_job"
    UPDATE_JOB = "update_job"


class ScheduleOp(StrEnum):
    """The schedule entity's operations (`acibatch.messages.schedule`): the API changes it, the orchestration
    reads it (`get`) and records each wake-up (`record`)."""

    GET = "get"
    PUT = "put"
    DELETE = "delete"
    SUSPEND = "suspend"
    RESUME = "resume"
    TRIGGER = "trigger"
    RECORD = "record"


class ScheduleIndexOp(StrEnum):
    """The scheduleindex entity's operations; each takes a bare schedule id."""

    ADD = "add"
    REMOVE = "remove"


EVENT_CALLBACK: Final = "Callback"
EVENT_CANCEL: Final = "Cancel"
EVENT_CAPACITY_GRANTED: Final = "CapacityGranted"

# Job schedules: one eternal orchestration per schedule, its definition in an entity, a per-tenant index.
SCHEDULE_ORCHESTRATOR: Final = "schedule_orchestrator"
RUN_SCHEDULED_JOB: Final = "run_scheduled_job"
SCHEDULE_ENTITY: Final = "schedule"
SCHEDULE_INDEX_ENTITY: Final = "scheduleindex"
EVENT_SCHEDULE_CHANGED: Final = "ScheduleChanged"
