"""What the jobs API answers: the bodies of `POST /api/jobs`, `GET /api/jobs[/{id}]` and cancel, as models. The
handlers build their answers with them and the OpenAPI document derives its schemas from them, so a state, a
field or a count cannot appear in one and not the other."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, WithJsonSchema

from acibatch.models.base import StoredModel
from acibatch.records import JOB_STATES, JobState, TaskState

# A job is in one of five states; its tasks may also be Blocked or Skipped.
JobStateField = Annotated[JobState, WithJsonSchema({"type": "string", "enum": [str(state) for state in JOB_STATES]})]
TaskCounts = Annotated[
    dict[str, int],
    WithJsonSchema(
        {
            "type": "object",
            "properties": {str(state): {"type": "integer", "minimum": 0} for state in TaskState},
            "additionalProperties": {"type": "integer"},
            "description": "tasks per state, Blocked and Skipped included",
        }
    ),
]
NEXT_PAGE = "offset of the next page; null when this page holds the last job"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


class JobAccepted(StoredModel):
    job_id: str
    state: Annotated[
        JobStateField, Field(description="Queued for a new job; for a resubmitted one, the job's current state")
    ]
    created: bool = Field(
        description="true when this request started the job; false when the same spec was already submitted under "
        "this jobId (nothing new is started)"
    )
    status_url: str
    cancel_url: str


class JobCancelling(StoredModel):
    job_id: str
    state: Literal["Cancelling"] = "Cancelling"
    status_url: str
    cancel_url: str


class JobView(StoredModel):
    """`GET /api/jobs/{jobId}`: the job, its counts and a page of its tasks (each `TaskRecord.public()`, with a
    Blocked task's `blockedBy`, or the `reason` of a task the job ended without starting it)."""

    job_id: str
    tenant: str
    state: JobStateField
    cancel_requested: bool
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    error: str | None
    task_count: int
    counts: TaskCounts
    tasks: Annotated[list[dict[str, Any]], WithJsonSchema({"type": "array", "items": _ref("Task")})]
    offset: int
    next_offset: int | None = Field(
        description="offset of the next page of tasks; null when this page holds the last task or is empty "
        "(limit=0 returns the job and its counts without tasks)"
    )
    status_url: str
    cancel_url: str


class JobList(StoredModel):
    jobs: list[dict[str, Any]]
    total: int
    offset: int
    next_offset: int | None = Field(description=NEXT_PAGE)


def task_view_schema(
    task: dict[str, Any], internal: tuple[str, ...], omitted: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """`TaskRecord`'s schema as the API shows a task: without its internal fields, with the reason of a task its job
    ended without starting it;
    fields written only when set (`omitted`, the record's OMIT_WHEN_DEFAULT) are not required."""
    properties = {name: value for name, value in task["properties"].items() if name not in internal}
    properties["reason"] = {
        "type": "string",
        "description": "a task its job ended without starting it: why, when the job said (Skipped: 'upstream <id> "
        "<state>'; Cancelled by a stopping job's chunk: 'the job was cancelled before this task started')",
    }
    return {
        **task,
        "properties": properties,
        "required": [name for name in task.get("required", []) if name in properties and name not in omitted],
    }
