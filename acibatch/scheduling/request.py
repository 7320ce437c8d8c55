"""The body of `PUT /api/schedules/{id}` as pydantic models: the OpenAPI schema is generated from them, and a
request is validated by them with the messages the API has always given, at the paths the client wrote.

The fields are declared in the order a reader goes through a body, and pydantic reports them in that order; a
field's checks that cannot be said as a bound (a cron croniter accepts, an IANA zone, an instant with an offset)
are wrap validators that see the raw value, so a wrong type gets the field's own message, never pydantic's.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, ClassVar, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import CroniterBadCronError, CroniterError, croniter
from pydantic import Field, Strict, ValidationInfo, WithJsonSchema, WrapValidator, model_validator
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import core_schema

from acibatch.models.base import (
    NULLABLE,
    ApiModel,
    Hint,
    Problem,
    current_request,
    problem,
    problems_of,
    raise_problems,
)
from acibatch.scheduling.recurrence import (
    DURATION,
    MAX_INTERVAL_SECONDS,
    MIN_INTERVAL_SECONDS,
    has_seconds,
    parse_duration,
    parse_instant,
)
from acibatch.scheduling.wake import CatchUp, ConcurrencyPolicy
from acibatch.spec import STRICT_OUTBOUND, JobSpec, JobSpecInvalid, json_type, parse_job_spec

MAX_DEADLINE_SECONDS = 366 * 24 * 3600
MAX_CRON_CHARS = 200
MAX_INSTANT_CHARS = 40
SCHEDULE_FIELDS = frozenset(
    {
        "schedule",
        "doNotRunUntil",
        "doNotRunAfter",
        "startingDeadlineSeconds",
        "concurrencyPolicy",
        "catchUp",
        "suspend",
        "jobSpecification",
    }
)
RECURRENCE_FIELDS = frozenset({"cron", "timeZone", "recurrenceInterval"})
NOT_A_SCHEDULE = "must be a JSON object describing the schedule"
NOT_A_RECURRENCE = (
    'must be an object: {"cron": "0 2 * * *", "timeZone": "Europe/Berlin"} or {"recurrenceInterval": "PT1H"}'
)
ONE_RECURRENCE = "give exactly one of 'cron' and 'recurrenceInterval'"
INSTANT_HINT = "must be an ISO 8601 instant with an offset, e.g. '2026-12-24T18:00:00Z'"
INTERVAL_HINT = (
    f"must be an ISO 8601 duration of whole seconds from {MIN_INTERVAL_SECONDS} s to 366 days, e.g. 'PT1H' or 'P1DT12H'"
)
ZONE_EXAMPLE = "use one like 'Europe/Berlin' or 'UTC'"
Handler = core_schema.ValidatorFunctionWrapHandler


def _choices(kind: type[ConcurrencyPolicy] | type[CatchUp]) -> str:
    return "must be one of " + ", ".join(f"'{member}'" for member in kind)


def _cron(value: Any, handler: Handler) -> str:
    """A cron croniter accepts, its fields separated by single spaces (the form it is stored and run in)."""
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_CRON_CHARS:
        raise problem("must be a cron expression such as '0 2 * * *' (at 02:00 every day)")
    cron = " ".join(value.split())
    fields = cron.split()
    if not (cron.startswith("@") and len(fields) == 1) and len(fields) not in (5, 6):
        raise problem(
            f"has {len(fields)} fields; give 5 ('min hour day month weekday') or 6 with seconds first "
            "('sec min hour day month weekday')"
        )
    try:
        croniter(cron, datetime(2000, 1, 1), second_at_beginning=has_seconds(cron))
    except (CroniterBadCronError, CroniterError, ValueError, KeyError) as error:
        raise problem(f"is not a valid cron expression: {error}") from None
    return cron


@functools.cache
def _zone_names() -> frozenset[str]:
    # available_timezones() scans the zone files; the answer does not change while the app runs.
    return frozenset(available_timezones() | {"UTC"})


def _zone(value: Any, handler: Handler) -> str:
    """An IANA zone name zoneinfo can load; null means UTC."""
    if value is None:
        return "UTC"
    if isinstance(value, str) and value in _zone_names():
        try:
            ZoneInfo(value)
            return str(handler(value))
        except (ZoneInfoNotFoundError, ValueError):
            pass
    if isinstance(value, str):
        raise problem(f"'{value[:60]}' is not an IANA time zone name; {ZONE_EXAMPLE}")
    raise problem(f"must be a string naming an IANA time zone, not {json_type(value)}; {ZONE_EXAMPLE}")


def _interval(value: Any, handler: Handler) -> int:
    """An ISO 8601 duration, kept as its whole seconds."""
    seconds = parse_duration(value) if isinstance(value, str) else None
    if seconds is None or not MIN_INTERVAL_SECONDS <= seconds <= MAX_INTERVAL_SECONDS:
        raise problem(INTERVAL_HINT)
    return seconds


def _instant(value: Any) -> datetime | None:
    if value is None:
        return None
    try:
        if not isinstance(value, str) or len(value) > MAX_INSTANT_CHARS:
            raise ValueError
        return parse_instant(value)
    except ValueError:
        raise problem(INSTANT_HINT) from None


def _not_before(value: Any, handler: Handler) -> datetime | None:
    return _instant(value)


def _not_after(value: Any, handler: Handler, info: ValidationInfo) -> datetime | None:
    # Fields are validated in declared order: doNotRunUntil is in `info.data` when it was valid.
    not_after = _instant(value)
    not_before = info.data.get("do_not_run_until")
    if not_before is not None and not_after is not None and not_after <= not_before:
        raise problem("must be later than doNotRunUntil")
    return not_after


def _job(value: Any, handler: Handler) -> JobSpec:
    """The job spec as `POST /jobs` takes it, but with no jobId: each run's job id comes from its tick."""
    if isinstance(value, dict) and "jobId" in value:
        raise_problems([(("jobId",), "must not be set: each run's job id is derived from the tick")])
    request = current_request()
    outbound = request.outbound if request is not None and request.outbound is not None else STRICT_OUTBOUND
    # Files are allowed as in `POST /jobs`: when blob storage is configured (each run checks again when it starts).
    storage_enabled = request is not None and request.storage_enabled
    try:
        return parse_job_spec(value, outbound=outbound, storage_enabled=storage_enabled)
    except JobSpecInvalid as invalid:
        # Each error's path stays as the job validator wrote it ('body' for a job that is not an object).
        raise_problems([((error.path,), error.message) for error in invalid.errors])
        raise


Instant = Annotated[datetime | None, Field(json_schema_extra={"maxLength": MAX_INSTANT_CHARS})]


def _raw_object(
    model: type[ApiModel],
    value: Any,
    handler: Callable[[Any], Any],
    unknown: Callable[[str], str],
    shape: Callable[[dict[str, Any]], list[Problem]],
) -> Any:
    """A request's object: its unknown fields (sorted), then `shape`'s problems, then each field's own."""
    if current_request() is None or isinstance(value, model):
        return handler(value)
    allowed = model.request_fields()
    problems: list[Problem] = [((name,), unknown(name)) for name in sorted(set(value) - allowed)]
    problems.extend(shape(value))
    if len(problems) > len(set(value) - allowed):
        raise_problems(problems)
    try:
        result = handler({name: item for name, item in value.items() if name in allowed})
    except PydanticValidationError as error:
        raise_problems([*problems, *problems_of(error)])
        raise
    raise_problems(problems)
    return result


class ScheduleRecurrence(ApiModel):
    """When a schedule fires: `cron` on the wall clock of `timeZone`, or every `recurrenceInterval`."""

    model_config = {"json_schema_extra": {"oneOf": [{"required": ["cron"]}, {"required": ["recurrenceInterval"]}]}}

    time_zone: Annotated[str, WrapValidator(_zone), NULLABLE, Field(examples=["Europe/Berlin"])] = "UTC"
    cron: Annotated[
        str | None,
        WrapValidator(_cron),
        WithJsonSchema({"type": "string", "minLength": 1, "maxLength": MAX_CRON_CHARS, "examples": ["0 2 * * *"]}),
    ] = None
    recurrence_interval: Annotated[
        int | None,
        WrapValidator(_interval),
        WithJsonSchema(
            {
                "type": "string",
                "pattern": DURATION.pattern,
                "description": "ISO 8601 duration of whole seconds, 1 s to 366 days",
                "examples": ["PT1H"],
            }
        ),
    ] = None

    @model_validator(mode="wrap")
    @classmethod
    def _checked(cls, value: Any, handler: Callable[[Any], Self]) -> Self:
        if current_request() is not None and not isinstance(value, dict | cls):
            raise_problems([((), NOT_A_RECURRENCE)])

        def one_of(data: dict[str, Any]) -> list[Problem]:
            return [] if ("cron" in data) != ("recurrenceInterval" in data) else [((), ONE_RECURRENCE)]

        def unknown(name: str) -> str:
            return "unknown field; allowed: cron, timeZone, recurrenceInterval"

        result: Self = _raw_object(cls, value, handler, unknown, one_of)
        return result


class ScheduleRequest(ApiModel):
    """The body of `PUT /api/schedules/{id}`; every field but `schedule` and `jobSpecification` is optional."""

    # The document's name for it (`#/components/schemas/ScheduleSpec`), which clients already use.
    SCHEMA_NAME: ClassVar[str] = "ScheduleSpec"

    schedule: ScheduleRecurrence
    do_not_run_until: Annotated[Instant, WrapValidator(_not_before)] = None
    do_not_run_after: Annotated[Instant, WrapValidator(_not_after)] = None
    starting_deadline_seconds: Annotated[
        Annotated[int, Strict(), Field(ge=1, le=MAX_DEADLINE_SECONDS)] | None,
        Hint(f"must be a whole number from 1 to {MAX_DEADLINE_SECONDS}"),
    ] = None
    concurrency_policy: Annotated[ConcurrencyPolicy, Hint(_choices(ConcurrencyPolicy))] = ConcurrencyPolicy.ALLOW
    catch_up: Annotated[CatchUp, Hint(_choices(CatchUp))] = CatchUp.SKIP
    suspend: Annotated[bool, Strict(), Hint("must be true or false")] = False
    job_specification: Annotated[JobSpec, WrapValidator(_job)]

    @model_validator(mode="wrap")
    @classmethod
    def _checked(cls, value: Any, handler: Callable[[Any], Self]) -> Self:
        if current_request() is not None and not isinstance(value, dict | cls):
            raise_problems([(("body",), NOT_A_SCHEDULE)])

        def unknown(name: str) -> str:
            hint = " (keepJobs is not supported yet)" if name == "keepJobs" else ""
            return f"unknown field{hint}; allowed fields are {', '.join(sorted(SCHEDULE_FIELDS))}"

        if current_request() is not None and isinstance(value, dict):
            # Left out, `schedule` and `jobSpecification` get the message a wrong value would.
            value = {"schedule": None, "jobSpecification": None, **value}
        result: Self = _raw_object(cls, value, handler, unknown, lambda data: [])
        return result
