"""The OpenAPI 3.1 document of the acibatch HTTP API (served at `GET /api/openapi.json`).

Bounds and enums are imported from the validators so the document cannot drift from what the API enforces.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic.json_schema import models_json_schema

from acibatch.callbacks import MAX_FILE_CHARS, MAX_JSON_DEPTH, MAX_MESSAGE_CHARS, MAX_RESULT_BYTES
from acibatch.exitrules import EXIT_CODE_MAX, EXIT_CODE_MIN
from acibatch.models.jsonschema import ComponentSchemas
from acibatch.models.jsonschema import pattern_text as _pattern_text
from acibatch.models.views import JobAccepted, JobCancelling, JobList, JobView, task_view_schema
from acibatch.naming import TENANT_RULE
from acibatch.openapi_dashboard import DASHBOARD_SCHEMAS, dashboard_paths
from acibatch.openapi_files import FILES_SCHEMAS, files_paths, logs_path
from acibatch.openapi_schedules import SCHEDULE_SCHEMAS, schedule_paths
from acibatch.records import JOB_STATES, TaskRecord
from acibatch.spec import ID_RULE, JobSpec

ERROR = {"$ref": "#/components/responses/Error"}
FREE_JSON = f"any JSON, at most {MAX_RESULT_BYTES} bytes written compactly and {MAX_JSON_DEPTH} levels of nesting"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(code): ERROR for code in codes}


def _pattern(rule: re.Pattern[str]) -> str:
    return _pattern_text(rule.pattern)


def _path_param(name: str, description: str, rule: re.Pattern[str]) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "pattern": _pattern(rule)},
    }


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """An optional field that also accepts an explicit null, meaning the same as leaving it out."""
    return {**schema, "type": [schema["type"], "null"]}


def _query_int(name: str, description: str, minimum: int, maximum: int, default: int) -> dict[str, Any]:
    schema = {"type": "integer", "minimum": minimum, "maximum": maximum, "default": default}
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


JOB_STATE = {"type": "string", "enum": [str(state) for state in JOB_STATES]}


def model_schemas() -> dict[str, Any]:
    """The request and response schemas, derived from the models that validate and build them."""
    _, found = models_json_schema(
        [
            (JobSpec, "validation"),
            (TaskRecord, "serialization"),
            (JobAccepted, "serialization"),
            (JobCancelling, "serialization"),
            (JobView, "serialization"),
            (JobList, "serialization"),
        ],
        by_alias=True,
        ref_template="#/components/schemas/{model}",
        schema_generator=ComponentSchemas,
    )
    schemas: dict[str, Any] = found["$defs"]
    schemas["Task"] = task_view_schema(schemas.pop("TaskRecord"), TaskRecord.INTERNAL, TaskRecord.OMIT_WHEN_DEFAULT)
    schemas["Job"] = schemas.pop("JobView")
    return schemas


QUOTA_PROPERTIES = {
    "maxGroups": {"type": "integer", "minimum": 1, "maximum": 10000},
    "maxCores": {"type": "number", "minimum": 0.1, "maximum": 10000},
    "maxMemoryGb": {"type": "number", "minimum": 0.1, "maximum": 100000},
    "weight": {"type": "number", "minimum": 0.01, "maximum": 1000, "description": "fair-share weight"},
}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string", "description": "what went wrong and how to fix it"},
                    "details": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {"path": {"type": "string"}, "message": {"type": "string"}},
                        },
                    },
                },
            }
        },
    },
    **model_schemas(),
    "TenantQuota": {"type": "object", "additionalProperties": False, "properties": QUOTA_PROPERTIES},
    "TenantCreated": {
        "type": "object",
        "properties": {
            "tenant": {"type": "string"},
            "quota": _ref("TenantQuota"),
            "created": {"type": "boolean"},
            "apiKey": {
                "type": "string",
                "description": "shown only when the tenant is created or its key rotated; keep it, also on a 202",
            },
            "applied": {
                "type": "boolean",
                "description": "true: the tenant and capacity entities hold the change (a new key works now); "
                "false (202): stored and applied when the task hub next polls their queues",
            },
            "message": {"type": "string", "description": "with a 202: what to expect and how to check"},
        },
    },
    "Tenant": {
        "type": "object",
        "properties": {
            "tenant": {"type": "string"},
            "quota": _ref("TenantQuota"),
            "running": {"type": "object"},
            "queued": {"type": "integer"},
            "usage": {"type": "object"},
            "jobs": {"type": "integer"},
        },
    },
    "Callback": {
        "type": "object",
        "additionalProperties": False,
        "required": ["status"],
        "properties": {
            "status": {
                "type": "string",
                "enum": ["succeeded", "failed", "progress", "completed"],
                "description": "completed: the acibatch agent's report (outputs and failure; no message, progress or "
                "result), which ends an attempt run with the agent",
            },
            "exitCode": _nullable({"type": "integer", "minimum": EXIT_CODE_MIN, "maximum": EXIT_CODE_MAX}),
            "message": _nullable({"type": "string", "maxLength": MAX_MESSAGE_CHARS}),
            "progress": {"description": FREE_JSON},
            "result": {"description": FREE_JSON},
            "outputs": _nullable(
                {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["count", "bytes"],
                    "properties": {
                        "count": {"type": "integer", "minimum": 0},
                        "bytes": {"type": "integer", "minimum": 0},
                    },
                }
            ),
            "failure": _nullable(
                {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["category"],
                    "properties": {
                        "category": {"type": "string", "enum": ["preProcessingError", "fileUploadError"]},
                        "message": _nullable({"type": "string", "maxLength": MAX_MESSAGE_CHARS}),
                        "file": _nullable({"type": "string", "maxLength": MAX_FILE_CHARS}),
                    },
                }
            ),
        },
    },
    "Logs": {
        "type": "object",
        "properties": {
            "jobId": {"type": "string"},
            "taskId": {"type": "string"},
            "groupName": {"type": ["string", "null"]},
            "source": {"type": "string", "enum": ["aci", "kept", "blob"]},
            "content": {"type": "string"},
            # A stored log (source blob) also says which page this is; see the route's description.
            "stream": {"type": "string", "enum": ["stdout", "stderr"]},
            "attempt": {"type": "integer"},
            "offset": {"type": "integer"},
            "nextOffset": {"type": "integer"},
            "complete": {"type": "boolean"},
        },
    },
    **DASHBOARD_SCHEMAS,
    **FILES_SCHEMAS,
    **SCHEDULE_SCHEMAS,
}

JOB_ID = _path_param("jobId", "the job's id", ID_RULE)
TASK_ID = _path_param("taskId", "the task's id", ID_RULE)
TENANT = _path_param("tenant", "tenant id: lowercase letters, digits and '-'", TENANT_RULE)


PREFER = {
    "name": "Prefer",
    "in": "header",
    "required": False,
    "description": "RFC 7240. `wait=N`: wait up to N s (at most 200) for the change to apply; `respond-async`: do "
    "not wait. By default the API waits up to host.json's maxQueuePollingInterval + 20 s, at most 50 s.",
    "schema": {"type": "string", "examples": ["wait=120", "respond-async"]},
}
APPLY_PENDING = (
    "accepted and stored but not applied yet (idle task hub queues are polled at most every "
    "maxQueuePollingInterval); holds the apiKey, which works once applied. Location: the tenant to check"
)


def openapi_document(server_url: str | None = None) -> dict[str, Any]:
    paths: dict[str, Any] = {
        "/health": {"get": {"operationId": "health", "security": [], "responses": {"200": {"description": "alive"}}}},
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "security": [],
                "responses": {"200": {"description": "this document"}},
            }
        },
        "/tenants/{tenant}": {
            "parameters": [TENANT],
            "put": {
                "operationId": "putTenant",
                "summary": "Create or update a tenant's quota (admin key)",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("TenantQuota")}},
                },
                "parameters": [PREFER],
                "responses": {
                    "200": _json(_ref("TenantCreated"), "updated and applied"),
                    "201": _json(_ref("TenantCreated"), "created and applied; holds the apiKey"),
                    "202": _json(_ref("TenantCreated"), APPLY_PENDING),
                    **_errors(400, 401, 403, 413),
                },
            },
            "get": {
                "operationId": "getTenant",
                "summary": "Quota, running work and usage (admin or that tenant's key)",
                "responses": {"200": _json(_ref("Tenant"), "the tenant"), **_errors(400, 401, 404)},
            },
        },
        "/tenants/{tenant}/keys": {
            "parameters": [TENANT],
            "post": {
                "operationId": "rotateTenantKey",
                "summary": "Rotate the tenant's API key (admin key)",
                "parameters": [PREFER],
                "responses": {
                    "200": _json(_ref("TenantCreated"), "the new key, in force"),
                    "202": _json(_ref("TenantCreated"), APPLY_PENDING),
                    **_errors(400, 401, 403, 404),
                },
            },
        },
        "/jobs": {
            "post": {
                "operationId": "submitJob",
                "summary": "Submit a job (tenant key); idempotent on jobId",
                "description": "Submitting the same spec again under the same jobId starts nothing and answers "
                "202 with `created: false` and the job's current state; a different spec under that jobId is 409.",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("JobSpec")}},
                },
                "responses": {
                    "202": {
                        **_json(_ref("JobAccepted"), "accepted (or the same job again)"),
                        "headers": {"Location": {"schema": {"type": "string"}}},
                    },
                    **_errors(400, 401, 403, 409, 413),
                },
            },
            "get": {
                "operationId": "listJobs",
                "summary": "The tenant's jobs, newest first",
                "parameters": [
                    {"name": "state", "in": "query", "schema": JOB_STATE},
                    _query_int("offset", "skip this many jobs", 0, 10**9, 0),
                    _query_int("limit", "page size", 1, 500, 50),
                ],
                "responses": {"200": _json(_ref("JobList"), "a page of jobs"), **_errors(400, 401, 403)},
            },
        },
        "/jobs/{jobId}": {
            "parameters": [JOB_ID],
            "get": {
                "operationId": "getJob",
                "summary": "A job's state, counts and a page of its tasks",
                "parameters": [
                    _query_int("offset", "first task of the page", 0, 10**6, 0),
                    _query_int("limit", "tasks per page; 0 returns the job and its counts only", 0, 1000, 100),
                ],
                "responses": {"200": _json(_ref("Job"), "the job"), **_errors(400, 401, 403, 404)},
            },
        },
        "/jobs/{jobId}/cancel": {
            "parameters": [JOB_ID],
            "post": {
                "operationId": "cancelJob",
                "summary": "Cancel a job: running groups are stopped and deleted, queued tasks never start",
                "responses": {"202": _json(_ref("JobCancelling"), "cancelling"), **_errors(401, 403, 404, 409)},
            },
        },
        "/jobs/{jobId}/tasks/{taskId}/logs": logs_path(JOB_ID, TASK_ID, ERROR),
        "/callbacks/{jobId}/{taskId}": {
            "parameters": [
                JOB_ID,
                TASK_ID,
                {
                    "name": "tenant",
                    "in": "query",
                    "required": True,
                    "schema": {"type": "string", "pattern": _pattern(TENANT_RULE)},
                },
            ],
            "post": {
                "operationId": "taskCallback",
                "summary": "A task container reports progress or its outcome",
                "description": "The bearer is the task attempt's token from BATCH_CALLBACK_TOKEN, not an API key.",
                "security": [{"taskToken": []}],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("Callback")}},
                },
                "responses": {
                    "200": {
                        "description": "the task already finished, or moved past the attempt; nothing was delivered"
                    },
                    "202": {"description": "accepted and delivered to the task"},
                    **_errors(400, 401, 403, 413),
                },
            },
        },
    }
    paths.update(dashboard_paths(JOB_ID, TASK_ID, ERROR))
    paths.update(files_paths(JOB_ID, TASK_ID, ERROR))
    paths.update(schedule_paths(ERROR))
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "acibatch",
            "version": "1.0.0",
            "description": "Multi-tenant batch jobs on Azure Container Instances. Every error is "
            '`{"error": {"code", "message", "details"?}}`.',
        },
        "security": [{"apiKey": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The admin key (BATCH_ADMIN_KEY) for tenant administration, or a tenant key "
                    "(acb_<tenant>_...) for that tenant's jobs.",
                },
                "taskToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A task attempt's callback token (BATCH_CALLBACK_TOKEN inside the container).",
                },
            },
            "schemas": SCHEMAS,
            "responses": {"Error": _json(_ref("Error"), "an error; the message says what to fix")},
        },
    }
    if server_url:
        document["servers"] = [{"url": server_url}]
    return document
