"""The OpenAPI 3.1 document of the acibatch HTTP API (served at `GET /api/openapi.json`).

Bounds and enums are imported from the validators so the document cannot drift from what the API enforces.
"""

from __future__ import annotations

from typing import Any

from acibatch import spec
from acibatch.callbacks import MAX_MESSAGE_CHARS, MAX_RESULT_BYTES

ERROR = {"$ref": "#/components/responses/Error"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(code): ERROR for code in codes}


def _path_param(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string"},
    }


def _query_int(name: str, description: str, minimum: int, maximum: int, default: int) -> dict[str, Any]:
    schema = {"type": "integer", "minimum": minimum, "maximum": maximum, "default": default}
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


ENV = {
    "type": "object",
    "maxProperties": spec.MAX_ENV_VARS,
    "propertyNames": {"pattern": spec.ENV_NAME_RULE.pattern},
    "additionalProperties": {"type": "string", "maxLength": spec.MAX_ENV_VALUE_CHARS},
    "description": f"Environment variables; names starting with {spec.RESERVED_ENV_PREFIX} are reserved.",
}
COMMAND = {
    "type": "array",
    "items": {"type": "string", "maxLength": spec.MAX_ARG_CHARS},
    "maxItems": spec.MAX_COMMAND_ARGS,
    "description": "argv (exec form); omit to run the image's default command.",
}
TASK_STATE = {"type": "string", "enum": ["Queued", "Running", "Succeeded", "Failed", "Cancelled"]}
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
    "TaskSpec": {
        "type": "object",
        "additionalProperties": False,
        "required": ["id"],
        "properties": {
            "id": {"type": "string", "pattern": spec.ID_RULE.pattern},
            "env": ENV,
            "command": COMMAND,
        },
    },
    "JobSpec": {
        "type": "object",
        "additionalProperties": False,
        "required": ["image"],
        "description": "Give exactly one of `tasks` or `taskCount`.",
        "properties": {
            "jobId": {"type": "string", "pattern": spec.ID_RULE.pattern, "description": "idempotency key"},
            "image": {
                "type": "string",
                "maxLength": 512,
                "examples": ["myregistry.azurecr.io/team/worker:1.2"],
            },
            "command": COMMAND,
            "cpu": {
                "type": "number",
                "minimum": spec.CPU_STEP,
                "maximum": spec.MAX_CPU,
                "default": spec.DEFAULT_CPU,
            },
            "memoryGb": {
                "type": "number",
                "minimum": spec.MIN_MEMORY_GB,
                "maximum": spec.MAX_MEMORY_GB,
                "default": spec.DEFAULT_MEMORY_GB,
            },
            "env": ENV,
            "secureEnv": {
                **ENV,
                "description": "passed as ACI secure values; never returned",
                "writeOnly": True,
            },
            "tasks": {"type": "array", "items": _ref("TaskSpec"), "minItems": 1, "maxItems": spec.MAX_TASKS},
            "taskCount": {"type": "integer", "minimum": 1, "maximum": spec.MAX_TASKS},
            "maxAttempts": {
                "type": "integer",
                "minimum": 1,
                "maximum": spec.MAX_ATTEMPTS,
                "default": spec.DEFAULT_MAX_ATTEMPTS,
            },
            "taskTimeoutSeconds": {
                "type": "integer",
                "minimum": 1,
                "maximum": spec.MAX_TIMEOUT_SECONDS,
                "default": spec.DEFAULT_TASK_TIMEOUT_SECONDS,
            },
            "jobTimeoutSeconds": {"type": "integer", "minimum": 1, "maximum": spec.MAX_TIMEOUT_SECONDS},
            "priority": {"type": "string", "enum": [p.value for p in spec.Priority], "default": "Regular"},
            "spotFallback": {"type": "boolean", "default": True},
            "onSuccess": {"type": "string", "enum": [c.value for c in spec.Cleanup], "default": "delete"},
            "onFailure": {"type": "string", "enum": [c.value for c in spec.Cleanup], "default": "delete"},
            "notifyUrl": {"type": "string", "format": "uri", "maxLength": 2048},
        },
    },
    "JobAccepted": {
        "type": "object",
        "properties": {
            "jobId": {"type": "string"},
            "state": {"type": "string"},
            "statusUrl": {"type": "string"},
            "cancelUrl": {"type": "string"},
        },
    },
    "Task": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "state": TASK_STATE,
            "attempts": {"type": "integer"},
            "exitCode": {"type": ["integer", "null"]},
            "groupName": {"type": ["string", "null"]},
            "startedAt": {"type": ["string", "null"], "format": "date-time"},
            "finishedAt": {"type": ["string", "null"], "format": "date-time"},
            "error": {"type": ["string", "null"]},
            "result": {"description": "the small JSON the task reported"},
            "progress": {"description": "the last progress the task reported"},
        },
    },
    "Job": {
        "type": "object",
        "properties": {
            "jobId": {"type": "string"},
            "tenant": {"type": "string"},
            "state": TASK_STATE,
            "cancelRequested": {"type": "boolean"},
            "createdAt": {"type": ["string", "null"]},
            "startedAt": {"type": ["string", "null"]},
            "finishedAt": {"type": ["string", "null"]},
            "error": {"type": ["string", "null"]},
            "taskCount": {"type": "integer"},
            "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
            "tasks": {"type": "array", "items": _ref("Task")},
            "offset": {"type": "integer"},
            "nextOffset": {"type": ["integer", "null"]},
            "statusUrl": {"type": "string"},
            "cancelUrl": {"type": "string"},
        },
    },
    "JobList": {
        "type": "object",
        "properties": {
            "jobs": {"type": "array", "items": {"type": "object"}},
            "total": {"type": "integer"},
            "offset": {"type": "integer"},
            "nextOffset": {"type": ["integer", "null"]},
        },
    },
    "TenantQuota": {"type": "object", "additionalProperties": False, "properties": QUOTA_PROPERTIES},
    "TenantCreated": {
        "type": "object",
        "properties": {
            "tenant": {"type": "string"},
            "quota": _ref("TenantQuota"),
            "created": {"type": "boolean"},
            "apiKey": {
                "type": "string",
                "description": "shown only when the tenant is created or its key rotated",
            },
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
            "status": {"type": "string", "enum": ["succeeded", "failed", "progress"]},
            "exitCode": {"type": "integer"},
            "message": {"type": "string", "maxLength": MAX_MESSAGE_CHARS},
            "progress": {"description": f"any JSON, at most {MAX_RESULT_BYTES} bytes"},
            "result": {"description": f"any JSON, at most {MAX_RESULT_BYTES} bytes"},
        },
    },
    "Logs": {
        "type": "object",
        "properties": {
            "jobId": {"type": "string"},
            "taskId": {"type": "string"},
            "groupName": {"type": ["string", "null"]},
            "source": {"type": "string", "enum": ["aci", "kept"]},
            "content": {"type": "string"},
        },
    },
}

JOB_ID = _path_param("jobId", "the job's id")
TENANT = _path_param("tenant", "tenant id: lowercase letters, digits and '-'")


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
                "responses": {
                    "200": _json(_ref("TenantCreated"), "updated"),
                    "201": _json(_ref("TenantCreated"), "created; holds the apiKey"),
                    **_errors(400, 401, 403, 413, 503),
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
                "responses": {
                    "200": _json(_ref("TenantCreated"), "the new key"),
                    **_errors(400, 401, 403, 404),
                },
            },
        },
        "/jobs": {
            "post": {
                "operationId": "submitJob",
                "summary": "Submit a job (tenant key); idempotent on jobId",
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
                    {"name": "state", "in": "query", "schema": TASK_STATE},
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
                    _query_int("limit", "tasks per page", 0, 1000, 100),
                ],
                "responses": {"200": _json(_ref("Job"), "the job"), **_errors(400, 401, 403, 404)},
            },
        },
        "/jobs/{jobId}/cancel": {
            "parameters": [JOB_ID],
            "post": {
                "operationId": "cancelJob",
                "summary": "Cancel a job: running groups are stopped and deleted, queued tasks never start",
                "responses": {"202": _json(_ref("JobAccepted"), "cancelling"), **_errors(401, 403, 404, 409)},
            },
        },
        "/jobs/{jobId}/tasks/{taskId}/logs": {
            "parameters": [JOB_ID, _path_param("taskId", "the task's id")],
            "get": {
                "operationId": "taskLogs",
                "summary": "The task container's log (live from ACI, or the tail kept after deletion)",
                "parameters": [_query_int("tail", "last N lines", 0, 100000, 0)],
                "responses": {"200": _json(_ref("Logs"), "the log"), **_errors(400, 401, 403, 404)},
            },
        },
        "/callbacks/{jobId}/{taskId}": {
            "parameters": [
                JOB_ID,
                _path_param("taskId", "the task's id"),
                {"name": "tenant", "in": "query", "required": True, "schema": {"type": "string"}},
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
                    "200": {"description": "the task already finished; the report was ignored"},
                    "202": {"description": "accepted and delivered to the task"},
                    **_errors(400, 401, 403, 413),
                },
            },
        },
    }
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
