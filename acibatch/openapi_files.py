"""The files part of the OpenAPI document: a task's stored log, its output files and the tenant's input sets
(`api.tasklogs`, `api.files`). `acibatch.openapi` merges these into the one document served at
`GET /api/openapi.json`."""

from __future__ import annotations

from typing import Any

from acibatch.filelimits import (
    DOWNLOAD_MAX_BYTES,
    INPUT_LIST_DEFAULT,
    INPUT_LIST_MAX,
    INPUT_MAX_BYTES,
    INPUT_PATH_MAX_CHARS,
    LOG_ATTEMPT_MAX,
    LOG_OFFSET_MAX,
    LOG_PAGE_MAX_BYTES,
    MAX_TAIL_LINES,
    RELATIVE_PATH_PATTERN,
    ROUTE_PATH_MAX_CHARS,
)
from acibatch.filespec import CONTAINER_NAME_RULE, MAX_CONTAINER_NAME_CHARS
from acibatch.models.jsonschema import pattern_text

NEXT_OFFSET = {"type": ["integer", "null"], "description": "offset of the next page; null on the last page"}
SHA256 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


FILES_SCHEMAS: dict[str, Any] = {
    "TaskFile": {
        "type": "object",
        "required": ["name", "size", "sha256", "destination"],
        "properties": {
            "name": {"type": "string", "description": "the blob name; GET .../files/{name} downloads a default one"},
            "file": {"type": ["string", "null"], "description": "the file's path in the task's working directory"},
            "size": {"type": "integer", "minimum": 0},
            "sha256": SHA256,
            "destination": {
                "type": "string",
                "enum": ["default", "custom"],
                "description": "default: the tenant's storage, downloadable here; custom: the container the "
                "outputFiles entry named (destination.container.containerUrl)",
            },
        },
    },
    "TaskFiles": {
        "type": "object",
        "required": ["attempt", "files"],
        "properties": {
            "attempt": {"type": "integer", "minimum": 1, "description": "the attempt whose outputs these are"},
            "files": {"type": "array", "items": _ref("TaskFile")},
        },
    },
    "InputFileStored": {
        "type": "object",
        "required": ["name", "path", "size", "sha256"],
        "properties": {
            "name": {"type": "string", "description": "the input set (autoStorageContainerName)"},
            "path": {"type": "string"},
            "size": {"type": "integer", "minimum": 0},
            "sha256": SHA256,
        },
    },
    "InputSet": {
        "type": "object",
        "required": ["name", "total", "files", "offset", "nextOffset"],
        "properties": {
            "name": {"type": "string"},
            "total": {"type": "integer", "minimum": 0},
            "files": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"path": {"type": "string"}, "size": {"type": "integer", "minimum": 0}},
                },
            },
            "offset": {"type": "integer", "minimum": 0},
            "nextOffset": NEXT_OFFSET,
        },
    },
}

LOG_HEADERS = {
    "X-Acibatch-Log-Offset": {
        "description": "stored logs: where the next page starts (ask again with ?offset=)",
        "schema": {"type": "integer", "minimum": 0},
    },
    "X-Acibatch-Log-Complete": {
        "description": "stored logs: true once the attempt has ended (no more bytes will come)",
        "schema": {"type": "string", "enum": ["true", "false"]},
    },
    "X-Acibatch-Log-Attempt": {"description": "stored logs: the attempt read", "schema": {"type": "integer"}},
    "X-Acibatch-Log-Latest-Attempt": {
        "description": "stored logs: the task's latest attempt so far (a follower moves on to later attempts)",
        "schema": {"type": "integer"},
    },
    "X-Acibatch-Task-Ended": {
        "description": "stored logs: true once the task has ended (no later attempt will come)",
        "schema": {"type": "string", "enum": ["true", "false"]},
    },
}


def _query_int(
    name: str, description: str, minimum: int, maximum: int | None = None, default: int | None = None
) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer", "minimum": minimum}
    if maximum is not None:
        schema["maximum"] = maximum
    if default is not None:
        schema["default"] = default
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


def logs_path(job_id: dict[str, Any], task_id: dict[str, Any], error: dict[str, Any]) -> dict[str, Any]:
    return {
        "parameters": [job_id, task_id],
        "get": {
            "operationId": "taskLogs",
            "summary": "A task's log: whole from blob storage for a task run with the agent, else live from ACI or "
            "the tail kept after deletion",
            "description": "A stored log comes in pages of at most 4 MiB: ask again from `X-Acibatch-Log-Offset` "
            "until a page is empty and `X-Acibatch-Log-Complete` is true, always naming the attempt "
            "(`X-Acibatch-Log-Attempt`): the default, the latest, changes when a retry starts. "
            "`Accept: text/plain` answers the raw bytes; otherwise JSON. `stream`, `attempt` and `offset` apply "
            "to stored logs only.",
            "parameters": [
                _query_int("tail", "last N lines", 0, MAX_TAIL_LINES),
                {
                    "name": "stream",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string", "enum": ["stdout", "stderr"], "default": "stdout"},
                },
                _query_int(
                    "attempt", "the attempt (default: the latest); at most the task's attempts", 1, LOG_ATTEMPT_MAX
                ),
                _query_int(
                    "offset",
                    f"byte offset to read from (pages of at most {LOG_PAGE_MAX_BYTES} bytes)",
                    0,
                    LOG_OFFSET_MAX,
                ),
            ],
            "responses": {
                "200": {
                    "description": "the log (or a page of it)",
                    "headers": LOG_HEADERS,
                    "content": {
                        "application/json": {"schema": _ref("Logs")},
                        "text/plain": {"schema": {"type": "string"}},
                    },
                },
                **{str(code): error for code in (400, 401, 403, 404, 502, 503)},
            },
        },
    }


def files_paths(job_id: dict[str, Any], task_id: dict[str, Any], error: dict[str, Any]) -> dict[str, Any]:
    name = {
        "name": "name",
        "in": "path",
        "required": True,
        "description": "an input set's name (what autoStorageContainerName names)",
        "schema": {
            "type": "string",
            "pattern": pattern_text(CONTAINER_NAME_RULE.pattern),
            "maxLength": MAX_CONTAINER_NAME_CHARS,
        },
    }
    errors = {str(code): error for code in (400, 401, 403, 404, 502, 503)}
    return {
        "/jobs/{jobId}/tasks/{taskId}/files": {
            "parameters": [job_id, task_id],
            "get": {
                "operationId": "taskFiles",
                "summary": "The output files the task's latest attempt uploaded (name, size, sha256)",
                "responses": {"200": _json(_ref("TaskFiles"), "the outputs"), **errors},
            },
        },
        "/jobs/{jobId}/tasks/{taskId}/files/{name}": {
            "parameters": [
                job_id,
                task_id,
                {
                    "name": "name",
                    "in": "path",
                    "required": True,
                    "description": "an output's name as listed (may hold '/')",
                    "schema": {
                        "type": "string",
                        "pattern": pattern_text(RELATIVE_PATH_PATTERN),
                        "maxLength": ROUTE_PATH_MAX_CHARS,
                    },
                },
            ],
            "get": {
                "operationId": "taskFile",
                "summary": "Download one output uploaded to the default destination",
                "responses": {
                    "200": {
                        "description": "the file's bytes",
                        "headers": {"X-Acibatch-Sha256": {"schema": SHA256}},
                        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
                    },
                    "409": {**error, "description": "the output is in the tenant's own container"},
                    "413": {**error, "description": f"the output is over {DOWNLOAD_MAX_BYTES} bytes"},
                    **errors,
                },
            },
        },
        "/storage/{name}": {
            "parameters": [name],
            "get": {
                "operationId": "listInputs",
                "summary": "The files of one of the tenant's input sets",
                "parameters": [
                    _query_int("offset", "skip this many files", 0, 10**9, 0),
                    _query_int("limit", "page size", 1, INPUT_LIST_MAX, INPUT_LIST_DEFAULT),
                ],
                "responses": {"200": _json(_ref("InputSet"), "a page of files"), **errors},
            },
        },
        "/storage/{name}/{path}": {
            "parameters": [
                name,
                {
                    "name": "path",
                    "in": "path",
                    "required": True,
                    "description": "the file's relative path in the set ('/' between folders; no '..')",
                    "schema": {
                        "type": "string",
                        "pattern": pattern_text(RELATIVE_PATH_PATTERN),
                        "maxLength": INPUT_PATH_MAX_CHARS,
                    },
                },
            ],
            "put": {
                "operationId": "uploadInput",
                "summary": f"Store one input file (at most {INPUT_MAX_BYTES} bytes), replacing any at that path",
                "requestBody": {
                    # An empty file is a file: no body stores one.
                    "required": False,
                    "description": "the file's bytes",
                    "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
                },
                "responses": {"201": _json(_ref("InputFileStored"), "stored"), "413": error, **errors},
            },
        },
    }
