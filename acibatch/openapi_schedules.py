"""The schedules' part of the OpenAPI document (`api.schedules`); `acibatch.openapi` merges it into the one
document served at `GET /api/openapi.json`. The request body's schemas are generated from the models that validate
it (`acibatch.scheduling.request`); the answers and the paths are written here."""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from acibatch.models.jsonschema import REF_TEMPLATE, ComponentSchemas, pattern_text
from acibatch.scheduling.request import ScheduleRecurrence, ScheduleRequest
from acibatch.scheduling.spec import SCHEDULE_ID_RULE
from acibatch.scheduling.wake import CatchUp, ConcurrencyPolicy

NULLABLE_TIME = {"type": ["string", "null"]}
RULES_IN_WORDS = (
    "Rules JSON Schema cannot state: `cron` must be a cron expression croniter accepts with 5 fields, or 6 with "
    "seconds first, that fires at least once; `timeZone` an IANA zone name; `doNotRunAfter` later than "
    "`doNotRunUntil`. Cron times are wall-clock times in `timeZone`: a time the clock skips (DST) does not "
    "run, a time it shows twice runs once. `recurrenceInterval` counts in UTC from `doNotRunUntil`, else from "
    "one interval after creation. Ticks missed while nothing could run are counted, never run as a backlog: only "
    "the latest, and only with `catchUp: latest` if it is over 60 s late, within `startingDeadlineSeconds`."
)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


JOB_WITHOUT_ID = {
    "description": "the body of POST /jobs without jobId: each run's job id is "
    "'<scheduleId>.<instant, e.g. 20261206T020000Z>' ('<scheduleId>.manual.<instant>' when triggered)",
    "allOf": [_ref("JobSpec"), {"not": {"required": ["jobId"]}}],
}


def request_schemas() -> dict[str, Any]:
    """`ScheduleSpec` (the PUT body) and the schemas only it uses, generated from the models that validate it; the
    job spec's own schemas come from `acibatch.openapi`, so only references to them are kept here."""
    _, found = models_json_schema(
        [(ScheduleRequest, "validation")],
        by_alias=True,
        ref_template=REF_TEMPLATE,
        schema_generator=ComponentSchemas,
    )
    defs: dict[str, Any] = found["$defs"]
    body = defs[ScheduleRequest.__name__]
    body["title"], body["description"] = ScheduleRequest.SCHEMA_NAME, RULES_IN_WORDS
    body["properties"]["jobSpecification"] = JOB_WITHOUT_ID
    for model in (ScheduleRequest, ScheduleRecurrence):
        for field in defs[model.__name__]["properties"].values():
            # An optional field's default is what leaving it out means; a null default would read as a value.
            if field.get("default", "") is None:
                del field["default"]
    schemas = {name: defs[name] for name in (ScheduleRecurrence.__name__, ConcurrencyPolicy.__name__, CatchUp.__name__)}
    return {ScheduleRequest.SCHEMA_NAME: body, **schemas}


SCHEDULE_SCHEMAS: dict[str, Any] = {
    **request_schemas(),
    "Schedule": {
        "type": "object",
        "required": ["scheduleId"],
        "properties": {
            "scheduleId": {"type": "string"},
            "suspended": {"type": "boolean"},
            "timeZone": {"type": "string"},
            "nextRuns": {
                "type": "array",
                "items": {"type": "string"},
                "description": "the next five run times in the schedule's time zone (none while suspended)",
            },
            "lastRun": {"type": ["object", "null"]},
            "lastSkip": {"type": ["object", "null"], "description": "the last tick that did not run, and why"},
            "activeJobs": {"type": "array", "items": {"type": "object"}},
            "recentJobs": {"type": "array", "items": {"type": "string"}},
            "pendingTriggers": {"type": "integer"},
            "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
            "createdAt": NULLABLE_TIME,
            "updatedAt": NULLABLE_TIME,
            "applied": {"type": "boolean"},
        },
    },
    "ScheduleList": {
        "type": "object",
        "required": ["schedules", "total"],
        "properties": {"schedules": {"type": "array", "items": {"type": "object"}}, "total": {"type": "integer"}},
    },
}


def schedule_paths(error: dict[str, Any]) -> dict[str, Any]:
    def errors(*codes: int) -> dict[str, Any]:
        return {str(code): error for code in codes}

    schedule_id = {
        "name": "scheduleId",
        "in": "path",
        "required": True,
        "description": "the schedule's id: letters, digits, '-' and '_', at most 39",
        "schema": {"type": "string", "pattern": pattern_text(SCHEDULE_ID_RULE.pattern)},
    }
    pending = _json(_ref("Schedule"), "stored, not applied yet (`applied: false`); Location: the schedule")

    def action(operation: str, summary: str, ok: str, status: str = "200") -> dict[str, Any]:
        return {
            "parameters": [schedule_id],
            "post": {
                "operationId": operation,
                "summary": summary,
                "responses": {status: _json(_ref("Schedule"), ok), "202": pending, **errors(401, 403, 404, 409)},
            },
        }

    return {
        "/schedules": {
            "get": {
                "operationId": "listSchedules",
                "summary": "The tenant's schedules",
                "responses": {"200": _json(_ref("ScheduleList"), "the schedules"), **errors(401, 403)},
            }
        },
        "/schedules/{scheduleId}": {
            "parameters": [schedule_id],
            "put": {
                "operationId": "putSchedule",
                "summary": "Create or change a job schedule (tenant key); takes effect at the next tick",
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("ScheduleSpec")}}},
                "responses": {
                    "200": _json(_ref("Schedule"), "changed"),
                    "201": _json(_ref("Schedule"), "created"),
                    "202": pending,
                    **errors(400, 401, 403, 413),
                },
            },
            "get": {
                "operationId": "getSchedule",
                "summary": "A schedule: its definition, next runs, last run and skip, active jobs and counts",
                "responses": {"200": _json(_ref("Schedule"), "the schedule"), **errors(401, 403, 404)},
            },
            "delete": {
                "operationId": "deleteSchedule",
                "summary": "Stop and delete a schedule; the jobs it started are left alone",
                "responses": {
                    "200": {"description": "deleted"},
                    "202": {"description": "deleted; the orchestration stops at its next wake-up"},
                    **errors(401, 403, 404),
                },
            },
        },
        "/schedules/{scheduleId}/suspend": action("suspendSchedule", "Suspend: no tick runs until resumed", "ok"),
        "/schedules/{scheduleId}/resume": action(
            "resumeSchedule", "Resume: the next tick runs; ticks passed while suspended do not", "ok"
        ),
        "/schedules/{scheduleId}/trigger": action(
            "triggerSchedule",
            "Run the job now (also while suspended), under the concurrency policy",
            "accepted; holds the run's jobId",
            "202",
        ),
    }
