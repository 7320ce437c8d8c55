"""The dashboard's part of the OpenAPI document: its cheap, conditional reads (`api.views`) and its static files
(`api.ui`). `acibatch.openapi` merges these into the one document served at `GET /api/openapi.json`."""

from __future__ import annotations

from typing import Any

from acibatch.records import JOB_STATES, STATE_LETTERS, TaskState

TASK_STATE = {"type": "string", "enum": [str(state) for state in JOB_STATES]}
GRID_LETTERS = "".join(STATE_LETTERS[state] for state in TaskState)
NEXT_OFFSET = {"type": ["integer", "null"], "description": "offset of the next page; null on the last page"}
PENDING_REASON = {
    "type": ["string", "null"],
    "description": "while the task is queued: why it waits (for example 'tenant quota' or 'create rate')",
}


STATIC_TYPES = ("text/html", "text/javascript", "text/css", "image/svg+xml")


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


DASHBOARD_SCHEMAS: dict[str, Any] = {
    "TaskGrid": {
        "type": "object",
        "required": ["jobId", "state", "taskCount", "counts", "states"],
        "properties": {
            "jobId": {"type": "string"},
            "state": TASK_STATE,
            "cancelRequested": {"type": "boolean"},
            "createdAt": {"type": ["string", "null"]},
            "startedAt": {"type": ["string", "null"]},
            "finishedAt": {"type": ["string", "null"]},
            "error": {"type": ["string", "null"]},
            "taskCount": {"type": "integer"},
            "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
            "states": {
                "type": "string",
                "pattern": f"^[{GRID_LETTERS}]*$",
                "description": "one letter per task in the job's task order (the order of GET .../taskids): "
                + ", ".join(f"{STATE_LETTERS[state]} {state}" for state in TaskState),
            },
        },
    },
    "TaskIds": {
        "type": "object",
        "properties": {"jobId": {"type": "string"}, "taskIds": {"type": "array", "items": {"type": "string"}}},
    },
    "TaskView": {
        "allOf": [
            _ref("Task"),
            {"type": "object", "properties": {"pendingReason": PENDING_REASON}},
        ]
    },
    "TaskPage": {
        "type": "object",
        "properties": {
            "jobId": {"type": "string"},
            "tasks": {"type": "array", "items": _ref("TaskView")},
            "total": {"type": "integer", "description": "tasks in the asked state"},
            "offset": {"type": "integer"},
            "nextOffset": NEXT_OFFSET,
        },
    },
    "TaskDetail": {
        "allOf": [
            _ref("TaskView"),
            {
                "type": "object",
                "properties": {
                    "jobId": {"type": "string"},
                    "index": {"type": "integer", "description": "the task's position in the job"},
                },
            },
        ]
    },
    "JobSummaryList": {
        "type": "object",
        "properties": {
            "jobs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "jobId": {"type": "string"},
                        "state": TASK_STATE,
                        "createdAt": {"type": ["string", "null"]},
                        "finishedAt": {"type": ["string", "null"]},
                        "taskCount": {"type": "integer"},
                        "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
                    },
                },
            },
            "total": {"type": "integer"},
            "offset": {"type": "integer"},
            "nextOffset": NEXT_OFFSET,
        },
    },
    "TenantList": {
        "type": "object",
        "properties": {
            "tenants": {"type": "array", "items": _ref("Tenant")},
            "total": {"type": "integer"},
            "offset": {"type": "integer"},
            "nextOffset": NEXT_OFFSET,
        },
    },
}

ETAG_HEADERS = {"ETag": {"description": "send it back in If-None-Match to get a 304", "schema": {"type": "string"}}}
# If-None-Match is the standard conditional header (RFC 9110), described in words rather than as a parameter: as
# a parameter, generated values such as `*` would ask, rightly, for a 304.
CONDITIONAL = (
    "Answers carry an ETag; send it back in If-None-Match (RFC 9110, weak comparison, `*` matches any) and an "
    "unchanged answer is a 304 with no body."
)


def _query_int(name: str, description: str, maximum: int, default: int, minimum: int = 0) -> dict[str, Any]:
    schema = {"type": "integer", "minimum": minimum, "maximum": maximum, "default": default}
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


def _conditional(schema: str, description: str, error: dict[str, Any], *codes: int) -> dict[str, Any]:
    return {
        "200": {
            "description": description,
            "headers": ETAG_HEADERS,
            "content": {"application/json": {"schema": _ref(schema)}},
        },
        "304": {"description": "not modified since the ETag sent in If-None-Match", "headers": ETAG_HEADERS},
        **{str(code): error for code in codes},
    }


def _read(operation_id: str, summary: str, responses: dict[str, Any], *params: dict[str, Any]) -> dict[str, Any]:
    return {"get": {"operationId": operation_id, "summary": summary, "description": CONDITIONAL,
                    "parameters": list(params), "responses": responses}}  # fmt: skip


def dashboard_paths(job_id: dict[str, Any], task_id: dict[str, Any], error: dict[str, Any]) -> dict[str, Any]:
    state_query = {"name": "state", "in": "query", "required": False, "schema": TASK_STATE}
    return {
        "/jobs/{jobId}/grid": {
            "parameters": [job_id],
            **_read(
                "jobGrid",
                "A job's header and every task's state as one letter, from the progress entity (cheap at 10,000)",
                _conditional("TaskGrid", "the job's states", error, 400, 401, 403, 404),
            ),
        },
        "/jobs/{jobId}/taskids": {
            "parameters": [job_id],
            **_read(
                "jobTaskIds",
                "The job's task ids in order (they never change: poll with If-None-Match)",
                _conditional("TaskIds", "the ids", error, 400, 401, 403, 404),
            ),
        },
        "/jobs/{jobId}/tasks": {
            "parameters": [job_id],
            **_read(
                "jobTasks",
                "A page of the job's tasks, optionally only those in one state",
                _conditional("TaskPage", "a page of tasks", error, 400, 401, 403, 404),
                state_query,
                _query_int("offset", "skip this many matching tasks", 10**6, 0),
                _query_int("limit", "page size", 200, 50, minimum=1),
            ),
        },
        "/jobs/{jobId}/tasks/{taskId}": {
            "parameters": [job_id, task_id],
            **_read(
                "jobTask",
                "One task: state, attempts, times, exit code, error, result, progress and pendingReason",
                _conditional("TaskDetail", "the task", error, 400, 401, 403, 404),
            ),
        },
        "/dashboard/jobs": {
            **_read(
                "dashboardJobs",
                "The tenant's jobs, newest first, each with its task counts",
                _conditional("JobSummaryList", "a page of jobs", error, 400, 401, 403),
                state_query,
                _query_int("since", "only jobs submitted at or after this time, in Unix seconds (0: all)", 10**11, 0),
                _query_int("offset", "skip this many jobs", 10**9, 0),
                _query_int("limit", "page size", 100, 20, minimum=1),
            ),
        },
        "/dashboard/tenants": {
            **_read(
                "dashboardTenants",
                "Tenants with quota, running and queued work and usage (admin: every tenant; a tenant: itself)",
                _conditional("TenantList", "a page of tenants", error, 400, 401),
                _query_int("offset", "skip this many tenants", 10**6, 0),
                _query_int("limit", "page size", 200, 50, minimum=1),
            ),
        },
        "/ui/{path}": {
            "get": {
                "operationId": "dashboardFile",
                "summary": "The web dashboard's static files; open /api/ui/ in a browser",
                "description": CONDITIONAL,
                "security": [],
                "parameters": [
                    {
                        "name": "path",
                        "in": "path",
                        "required": True,
                        "description": "a file of the dashboard (may contain '/'; empty for the page itself)",
                        "schema": {"type": "string", "pattern": "^[A-Za-z0-9._/-]*$", "maxLength": 200},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "the file",
                        "content": {media: {} for media in STATIC_TYPES},
                    },
                    "304": {"description": "not modified"},
                    "308": {"description": "/api/ui redirects to /api/ui/"},
                    "404": error,
                },
            }
        },
    }
