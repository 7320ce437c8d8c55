"""The schedule spec: validate a `PUT /api/schedules/{id}` body into a `ScheduleSpec`, every error at once."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import CroniterBadCronError, CroniterError, croniter

from acibatch.outbound import OutboundPolicy
from acibatch.scheduling.recurrence import (
    MAX_INTERVAL_SECONDS,
    MIN_INTERVAL_SECONDS,
    Recurrence,
    has_seconds,
    parse_duration,
    parse_instant,
    whole_second,
)
from acibatch.scheduling.wake import CatchUp, ConcurrencyPolicy
from acibatch.spec import STRICT_OUTBOUND, JobSpec, JobSpecInvalid, SpecError, json_type, parse_job_spec

# No '.': a tick's job id joins the schedule id and the instant with one ('nightly.20261206T020000Z'), so no
# schedule's job id can equal another schedule's. 39 characters leave room for '.manual.' and the instant
# within a job id's 63.
SCHEDULE_ID_RULE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,38}$")
MAX_DEADLINE_SECONDS = 366 * 24 * 3600
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


Choice = TypeVar("Choice", bound=StrEnum)


class ScheduleSpecInvalid(ValueError):
    def __init__(self, errors: list[SpecError]) -> None:
        super().__init__("; ".join(f"{error.path}: {error.message}" for error in errors))
        self.errors = errors


@dataclass(frozen=True)
class ScheduleSpec:
    """A validated schedule. `job` is the job spec as submitted each tick (its jobId is set per tick)."""

    recurrence: Recurrence
    concurrency_policy: ConcurrencyPolicy
    catch_up: CatchUp
    suspend: bool
    starting_deadline_seconds: int | None
    job: JobSpec
    request: Mapping[str, Any] = field(default_factory=dict)  # the body as sent, but for jobSpecification
    secure_env_names: tuple[str, ...] = ()  # the durable form keeps the names; the values are sealed apart

    def public(self) -> dict[str, Any]:
        """The schedule as the API shows it: the body as sent, the job spec in canonical form with secure values
        hidden and a plain task list written back as its `taskCount`."""
        job = self.job.to_dict()
        job.pop("jobId")
        job["secureEnv"] = dict.fromkeys(sorted({*job["secureEnv"], *self.secure_env_names}), "(hidden)")
        tasks = job["tasks"]
        if all(task == {"id": str(number), "index": number} for number, task in enumerate(tasks)):
            del job["tasks"]
            job["taskCount"] = len(tasks)
        return {**self.request, "jobSpecification": job}

    def to_dict(self) -> dict[str, Any]:
        """Durable form (entity state, activity input): never holds secure env values (they are sealed apart)."""
        job = self.job.to_dict()
        job["secureEnv"] = {}
        return {
            "recurrence": self.recurrence.to_dict(),
            "concurrencyPolicy": str(self.concurrency_policy),
            "catchUp": str(self.catch_up),
            "suspend": self.suspend,
            "startingDeadlineSeconds": self.starting_deadline_seconds,
            "job": job,
            "request": dict(self.request),
            "secureEnvNames": sorted({*self.job.secure_env, *self.secure_env_names}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScheduleSpec:
        """Rebuild from `to_dict()` output (trusted: our own durable state)."""
        return cls(
            recurrence=Recurrence.from_dict(data["recurrence"]),
            concurrency_policy=ConcurrencyPolicy(data["concurrencyPolicy"]),
            catch_up=CatchUp(data["catchUp"]),
            suspend=bool(data.get("suspend", False)),
            starting_deadline_seconds=data.get("startingDeadlineSeconds"),
            job=JobSpec.from_dict(data["job"]),
            request=dict(data.get("request") or {}),
            secure_env_names=tuple(data.get("secureEnvNames") or ()),
        )


def _check_cron(errors: list[SpecError], cron: object) -> str | None:
    path = "schedule.cron"
    if not isinstance(cron, str) or not cron.strip() or len(cron) > 200:
        errors.append(SpecError(path, "must be a cron expression such as '0 2 * * *' (at 02:00 every day)"))
        return None
    cron = " ".join(cron.split())
    fields = cron.split()
    if not (cron.startswith("@") and len(fields) == 1) and len(fields) not in (5, 6):
        errors.append(
            SpecError(
                path,
                f"has {len(fields)} fields; give 5 ('min hour day month weekday') or 6 with seconds first "
                "('sec min hour day month weekday')",
            )
        )
        return None
    try:
        croniter(cron, datetime(2000, 1, 1), second_at_beginning=has_seconds(cron))
    except (CroniterBadCronError, CroniterError, ValueError, KeyError) as error:
        errors.append(SpecError(path, f"is not a valid cron expression: {error}"))
        return None
    return cron


def _check_zone(errors: list[SpecError], zone: object) -> str:
    path = "schedule.timeZone"
    if zone is None:
        return "UTC"
    if isinstance(zone, str) and zone in _zone_names():
        try:
            ZoneInfo(zone)
            return zone
        except (ZoneInfoNotFoundError, ValueError):
            pass
    hint = "use one like 'Europe/Berlin' or 'UTC'"
    if isinstance(zone, str):
        errors.append(SpecError(path, f"'{zone[:60]}' is not an IANA time zone name; {hint}"))
    else:
        errors.append(SpecError(path, f"must be a string naming an IANA time zone, not {json_type(zone)}; {hint}"))
    return "UTC"


@functools.cache
def _zone_names() -> frozenset[str]:
    # available_timezones() scans the zone files; the answer does not change while the app runs.
    return frozenset(available_timezones() | {"UTC"})


def _instant_field(errors: list[SpecError], data: Mapping[str, Any], name: str) -> datetime | None:
    value = data.get(name)
    if value is None:
        return None
    try:
        if not isinstance(value, str) or len(value) > 40:
            raise ValueError
        return parse_instant(value)
    except ValueError:
        errors.append(SpecError(name, "must be an ISO 8601 instant with an offset, e.g. '2026-12-24T18:00:00Z'"))
        return None


def parse_schedule_spec(
    data: object, *, created_at: datetime, outbound: OutboundPolicy = STRICT_OUTBOUND
) -> ScheduleSpec:
    """Validate a `PUT /api/schedules/{id}` body; raise `ScheduleSpecInvalid` listing every error.

    `created_at` anchors interval schedules without `doNotRunUntil` (their first run is one interval later)."""
    errors: list[SpecError] = []
    if not isinstance(data, dict):
        raise ScheduleSpecInvalid([SpecError("body", "must be a JSON object describing the schedule")])
    for unknown in sorted(set(data) - SCHEDULE_FIELDS):
        hint = " (keepJobs is not supported yet)" if unknown == "keepJobs" else ""
        errors.append(
            SpecError(unknown, f"unknown field{hint}; allowed fields are {', '.join(sorted(SCHEDULE_FIELDS))}")
        )

    recurrence = _parse_recurrence(errors, data.get("schedule"))
    not_before = _instant_field(errors, data, "doNotRunUntil")
    not_after = _instant_field(errors, data, "doNotRunAfter")
    if not_before and not_after and not_after <= not_before:
        errors.append(SpecError("doNotRunAfter", "must be later than doNotRunUntil"))

    deadline = data.get("startingDeadlineSeconds")
    if deadline is not None and (
        isinstance(deadline, bool) or not isinstance(deadline, int) or not 1 <= deadline <= MAX_DEADLINE_SECONDS
    ):
        errors.append(SpecError("startingDeadlineSeconds", f"must be a whole number from 1 to {MAX_DEADLINE_SECONDS}"))
        deadline = None
    policy = _choice(errors, data, "concurrencyPolicy", ConcurrencyPolicy, ConcurrencyPolicy.ALLOW)
    catch_up = _choice(errors, data, "catchUp", CatchUp, CatchUp.SKIP)
    suspend = data.get("suspend", False)
    if not isinstance(suspend, bool):
        errors.append(SpecError("suspend", "must be true or false"))
        suspend = False

    job = _parse_job(errors, data.get("jobSpecification"), outbound)
    if errors or recurrence is None or job is None:
        raise ScheduleSpecInvalid(errors)
    if recurrence.interval_seconds:
        anchor = not_before or whole_second(created_at) + timedelta(seconds=recurrence.interval_seconds)
        recurrence = replace(recurrence, anchor=anchor)
    recurrence = replace(recurrence, not_before=not_before, not_after=not_after)
    if recurrence.cron is not None and recurrence.next_after(not_before or created_at) is None:
        message = "never fires" + (" before doNotRunAfter" if not_after else "") + "; check the day and month fields"
        raise ScheduleSpecInvalid([SpecError("schedule.cron", message)])
    # The job spec is kept once, in canonical form (`job`); the rest of the body as it was sent.
    request = {name: value for name, value in data.items() if name != "jobSpecification"}
    return ScheduleSpec(
        recurrence=recurrence,
        concurrency_policy=policy,
        catch_up=catch_up,
        suspend=suspend,
        starting_deadline_seconds=deadline,
        job=job,
        request=request,
    )


def _parse_recurrence(errors: list[SpecError], value: object) -> Recurrence | None:
    if not isinstance(value, dict):
        errors.append(
            SpecError(
                "schedule",
                'must be an object: {"cron": "0 2 * * *", "timeZone": "Europe/Berlin"} or '
                '{"recurrenceInterval": "PT1H"}',
            )
        )
        return None
    for unknown in sorted(set(value) - RECURRENCE_FIELDS):
        errors.append(SpecError(f"schedule.{unknown}", "unknown field; allowed: cron, timeZone, recurrenceInterval"))
    has_cron, has_interval = "cron" in value, "recurrenceInterval" in value
    if has_cron == has_interval:
        errors.append(SpecError("schedule", "give exactly one of 'cron' and 'recurrenceInterval'"))
        return None
    zone = _check_zone(errors, value.get("timeZone"))
    if has_cron:
        cron = _check_cron(errors, value["cron"])
        return None if cron is None else Recurrence(cron=cron, time_zone=zone)
    raw = value["recurrenceInterval"]
    seconds = parse_duration(raw) if isinstance(raw, str) else None
    if seconds is None or not MIN_INTERVAL_SECONDS <= seconds <= MAX_INTERVAL_SECONDS:
        errors.append(
            SpecError(
                "schedule.recurrenceInterval",
                f"must be an ISO 8601 duration of whole seconds from {MIN_INTERVAL_SECONDS} s to 366 days, "
                "e.g. 'PT1H' or 'P1DT12H'",
            )
        )
        return None
    return Recurrence(interval_seconds=seconds, time_zone=zone)


def _choice(errors: list[SpecError], data: Mapping[str, Any], name: str, kind: type[Choice], default: Choice) -> Choice:
    value = data.get(name, default)
    if isinstance(value, str) and value in {str(member) for member in kind}:
        return kind(value)
    allowed = ", ".join(f"'{member}'" for member in kind)
    errors.append(SpecError(name, f"must be one of {allowed}"))
    return default


def _parse_job(errors: list[SpecError], value: object, outbound: OutboundPolicy) -> JobSpec | None:
    if isinstance(value, dict) and "jobId" in value:
        errors.append(
            SpecError("jobSpecification.jobId", "must not be set: each run's job id is derived from the tick")
        )
        return None
    try:
        return parse_job_spec(value, outbound=outbound)
    except JobSpecInvalid as invalid:
        errors.extend(SpecError(f"jobSpecification.{error.path}", error.message) for error in invalid.errors)
        return None
