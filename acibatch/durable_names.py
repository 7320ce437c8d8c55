"""Names shared by the Functions layers: orchestrators, activities, entities and external events.

They are part of the durable state's contract (histories refer to them by name), so renaming one strands
every in-flight instance: keep them stable.
"""

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

CAPACITY_ENTITY: Final = "capacity"
CAPACITY_KEY: Final = "region"
TENANT_ENTITY: Final = "tenant"
PROGRESS_ENTITY: Final = "jobprogress"

EVENT_CALLBACK: Final = "Callback"
EVENT_CANCEL: Final = "Cancel"
EVENT_CAPACITY_GRANTED: Final = "CapacityGranted"

# Job schedules: one eternal orchestration per schedule, its definition in an entity, a per-tenant index.
SCHEDULE_ORCHESTRATOR: Final = "schedule_orchestrator"
RUN_SCHEDULED_JOB: Final = "run_scheduled_job"
SCHEDULE_ENTITY: Final = "schedule"
SCHEDULE_INDEX_ENTITY: Final = "scheduleindex"
EVENT_SCHEDULE_CHANGED: Final = "ScheduleChanged"
