"""The OpenAPI 3.1 document of the acibatch HTTP API (served at `GET /api/openapi.json`).

Bounds and enums are imported from the validators so the document cannot drift from what the API enforces.
"""

from __future__ import annotations

import re
from typing import Any

from acibatch import spec
from acibatch.callbacks import MAX_JSON_DEPTH, MAX_MESSAGE_CHARS, MAX_RESULT_BYTES
from acibatch.dag import MAX_EDGES
from acibatch.naming import TENANT_RULE
from acibatch.openapi_dashboard import DASHBOARD_SCHEMAS, dashboard_paths
from acibatch.openapi_schedules import SCHEDULE_SCHEMAS, schedule_paths

ERROR = {"$ref": "#/components/responses/Error"}
FREE_JSON = f"any JSON, at most {MAX_RESULT_BYTES} bytes written compactly and {MAX_JSON_DEPTH} levels of nesting"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(code): ERROR for code in codes}


def _pattern(rule: re.Pattern[str]) -> str:
    """A Python pattern that JSON Schema (ECMA-262) reads the same: named groups become plain groups."""
    return re.sub(r"\(\?P<\w+>", "(?:", rule.pattern)


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


NO_NUL = "^[^\\u0000]*$"
# Any letter case: the validator compares names upper-cased.
RESERVED_ENV = "^" + "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in spec.RESERVED_ENV_PREFIX)
ENV = _nullable(
    {
        "type": "object",
        "maxProperties": spec.MAX_ENV_VARS,
        "propertyNames": {"pattern": _pattern(spec.ENV_NAME_RULE), "not": {"pattern": RESERVED_ENV}},
        "additionalProperties": {"type": "string", "maxLength": spec.MAX_ENV_VALUE_CHARS, "pattern": NO_NUL},
        "description": f"Environment variables; names starting with {spec.RESERVED_ENV_PREFIX} (any case) are "
        "reserved.",
    }
)
ARG = {"type": "string", "maxLength": spec.MAX_ARG_CHARS, "pattern": NO_NUL}
COMMAND = _nullable(
    {
        "type": "array",
        # JSON Schema 2020-12: `items` covers only the elements after `prefixItems`, so the program restates it.
        "prefixItems": [{**ARG, "minLength": 1, "description": "the program"}],
        "items": ARG,
        "maxItems": spec.MAX_COMMAND_ARGS,
        "description": "argv (exec form); omit (or null) to run the image's default command.",
    }
)
TASK_STATE = {"type": "string", "enum": ["Queued", "Running", "Succeeded", "Failed", "Cancelled"]}
# A task of a job with dependencies may also be Blocked (waiting for upstream tasks) or end Skipped.
TASK_ONLY_STATE = {"type": "string", "enum": [*TASK_STATE["enum"], "Skipped", "Blocked"]}
EXIT_OPTIONS = {
    "type": "object",
    "additionalProperties": False,
    "required": ["action"],
    "properties": {
        "action": {"type": "string", "enum": ["retry", "fail", "succeed"]},
        "dependencyAction": {
            "type": "string",
            "enum": ["satisfy", "block"],
            "description": "default: satisfy when the task succeeds, block otherwise",
        },
        "jobAction": {"type": "string", "enum": ["none", "terminate"], "default": "none"},
    },
}
EXIT_CODE = {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1}
EXIT_CONDITIONS = {
    "type": "object",
    "additionalProperties": False,
    "description": "What an exit code means (Azure Batch's exitConditions): the task's rules first, then the "
    "job's; an exact code before a range before `default` (non-zero codes only). fileUploadError never fires: "
    "acibatch uploads no files.",
    "properties": {
        "exitCodes": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["code", "exitOptions"],
                "properties": {"code": EXIT_CODE, "exitOptions": EXIT_OPTIONS},
            },
        },
        "exitCodeRanges": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["start", "end", "exitOptions"],
                "properties": {"start": EXIT_CODE, "end": EXIT_CODE, "exitOptions": EXIT_OPTIONS},
            },
        },
        "preProcessingError": EXIT_OPTIONS,
        "fileUploadError": EXIT_OPTIONS,
        "default": EXIT_OPTIONS,
    },
}
DEPENDS_ON = {
    "type": "object",
    "additionalProperties": False,
    "description": "Upstream tasks: `taskIds` and/or `taskIdRanges` (inclusive, integer ids only), or `array` (a "
    "task group, 'job' for ungrouped tasks) with `mode` nToN (task k after task k of that group) or sequential "
    "(task k after task k-1 of its own group). Checked at submit: unknown ids, self-dependencies, cycles (one is "
    f"named) and at most {MAX_EDGES} edges.",
    "properties": {
        "taskIds": {"type": "array", "items": {"type": "string", "minLength": 1}},
        "taskIdRanges": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["start", "end"],
                "properties": {"start": {"type": "integer", "minimum": 0}, "end": {"type": "integer", "minimum": 0}},
            },
        },
        "array": {"type": "string", "minLength": 1},
        "mode": {"type": "string", "enum": ["nToN", "sequential"]},
        "condition": {
            "type": "string",
            "enum": ["allSucceeded", "allCompleted", "anySucceeded"],
            "default": "allSucceeded",
        },
    },
}
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
            "id": {"type": "string", "pattern": _pattern(spec.ID_RULE)},
            "env": ENV,
            "command": COMMAND,
            "group": {"type": "string", "pattern": _pattern(spec.ID_RULE), "description": "task group for `array`"},
            "dependsOn": DEPENDS_ON,
            "exitConditions": EXIT_CONDITIONS,
        },
    },
    "JobSpec": {
        "type": "object",
        "additionalProperties": False,
        "required": ["image"],
        "description": "Give exactly one of `tasks` or `taskCount`. Rules JSON Schema cannot state: task ids "
        "are unique, and a variable is set in `env` or in `secureEnv`, not both. A top-level `command` may be "
        "empty only when every task has its own.",
        "oneOf": [{"required": ["tasks"]}, {"required": ["taskCount"]}],
        "if": {"required": ["tasks"], "properties": {"tasks": {"items": {"required": ["command"]}}}},
        "else": {"properties": {"command": {"minItems": 1}}},
        "properties": {
            "jobId": _nullable({"type": "string", "pattern": _pattern(spec.ID_RULE), "description": "idempotency key"}),
            "image": {
                "type": "string",
                "maxLength": 512,
                "pattern": _pattern(spec.IMAGE_RULE),
                "examples": ["myregistry.azurecr.io/team/worker:1.2"],
            },
            "command": COMMAND,
            "cpu": {
                "type": "number",
                "minimum": spec.CPU_STEP,
                "maximum": spec.MAX_CPU,
                "multipleOf": spec.CPU_STEP,
                "default": spec.DEFAULT_CPU,
            },
            "memoryGb": {
                "type": "number",
                "minimum": spec.MIN_MEMORY_GB,
                "maximum": spec.MAX_MEMORY_GB,
                "multipleOf": 0.1,
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
            "jobTimeoutSeconds": _nullable({"type": "integer", "minimum": 1, "maximum": spec.MAX_TIMEOUT_SECONDS}),
            "priority": {"type": "string", "enum": [p.value for p in spec.Priority], "default": "Regular"},
            "spotFallback": {"type": "boolean", "default": True},
            "onSuccess": {"type": "string", "enum": [c.value for c in spec.Cleanup], "default": "delete"},
            "onFailure": {"type": "string", "enum": [c.value for c in spec.Cleanup], "default": "delete"},
            "notifyUrl": _nullable({"type": "string", "format": "uri", "maxLength": 2048}),
            "dependsOn": {**DEPENDS_ON, "description": "the dependsOn of every task that gives none (array sugar)"},
            "exitConditions": EXIT_CONDITIONS,
            "onTaskFailure": {"type": "string", "enum": ["noAction", "terminateJob"], "default": "noAction"},
            "jobPriority": {
                "type": "integer",
                "minimum": spec.MIN_JOB_PRIORITY,
                "maximum": spec.MAX_JOB_PRIORITY,
                "default": 0,
                "description": "within the tenant, queued tasks of higher-priority jobs are admitted first; the "
                "fair share across tenants is unchanged",
            },
        },
    },
    "JobAccepted": {
        "type": "object",
        "required": ["jobId", "state", "created", "statusUrl", "cancelUrl"],
        "properties": {
            "jobId": {"type": "string"},
            "state": {
                **TASK_STATE,
                "description": "Queued for a new job; for a resubmitted one, the job's current state",
            },
            "created": {
                "type": "boolean",
                "description": "true when this request started the job; false when the same spec was already "
                "submitted under this jobId (nothing new is started)",
            },
            "statusUrl": {"type": "string"},
            "cancelUrl": {"type": "string"},
        },
    },
    "JobCancelling": {
        "type": "object",
        "required": ["jobId", "state", "statusUrl", "cancelUrl"],
        "properties": {
            "jobId": {"type": "string"},
            "state": {"type": "string", "enum": ["Cancelling"]},
            "statusUrl": {"type": "string"},
            "cancelUrl": {"type": "string"},
        },
    },
    "Task": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "state": TASK_ONLY_STATE,
            "attempts": {"type": "integer"},
            "platformRetries": {
                "type": "integer",
                "description": "attempts started again after a platform failure (eviction, lost group); not "
                "counted against maxAttempts",
            },
            "blockedBy": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Blocked: the first few upstream tasks that have not ended",
            },
            "reason": {"type": "string", "description": "Skipped: why, as 'upstream <id> <state>'"},
            "dependencyAction": {"type": ["string", "null"], "enum": ["satisfy", "block", None]},
            "jobAction": {"type": ["string", "null"], "enum": ["none", "terminate", None]},
            "exitCode": {"type": ["integer", "null"]},
            "groupName": {"type": ["string", "null"]},
            "startedAt": {"type": ["string", "null"], "format": "date-time"},
            "finishedAt": {"type": ["string", "null"], "format": "date-time"},
            "error": {
                "type": ["string", "null"],
                "description": "the last error the task met: why it failed or was cancelled, or on a "
                "Succeeded task why an earlier attempt or create did not succeed",
            },
            "pendingReason": {
                "type": ["string", "null"],
                "description": "while Queued, what the task waits for: the tenant's quota, regional capacity, "
                "the fair queue, the create rate (ACI's create limits or ARM's Retry-After), an ACI or Spot quota",
            },
            "result": {"description": "the small JSON the task reported"},
            "progress": {
                "description": "the last progress the task reported; while the task runs, a report over 4 KiB "
                'shows as {"omitted": "..."} (the live view is capped), and in full once the task ends'
            },
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
            "counts": {
                "type": "object",
                "additionalProperties": {"type": "integer"},
                "description": "tasks per state, Blocked and Skipped included",
            },
            "tasks": {"type": "array", "items": _ref("Task")},
            "offset": {"type": "integer"},
            "nextOffset": {
                "type": ["integer", "null"],
                "description": "offset of the next page of tasks; null when this page holds the last task or is "
                "empty (limit=0 returns the job and its counts without tasks)",
            },
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
            "nextOffset": {
                "type": ["integer", "null"],
                "description": "offset of the next page; null when this page holds the last job",
            },
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
            "status": {"type": "string", "enum": ["succeeded", "failed", "progress"]},
            "exitCode": _nullable({"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1}),
            "message": _nullable({"type": "string", "maxLength": MAX_MESSAGE_CHARS}),
            "progress": {"description": FREE_JSON},
            "result": {"description": FREE_JSON},
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
    **DASHBOARD_SCHEMAS,
    **SCHEDULE_SCHEMAS,
}

JOB_ID = _path_param("jobId", "the job's id", spec.ID_RULE)
TASK_ID = _path_param("taskId", "the task's id", spec.ID_RULE)
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
        "/jobs/{jobId}/tasks/{taskId}/logs": {
            "parameters": [JOB_ID, TASK_ID],
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
                    "200": {"description": "the task already finished; the report was ignored"},
                    "202": {"description": "accepted and delivered to the task"},
                    **_errors(400, 401, 403, 413),
                },
            },
        },
    }
    paths.update(dashboard_paths(JOB_ID, TASK_ID, ERROR))
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
