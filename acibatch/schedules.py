"""Job schedules: the schedule spec, its fire times, and what a schedule does at each wake-up. Pure: every
function takes `now` (or the instants it reasons about) and touches no clock, so the schedule orchestrator can
call them during replay and get the same answers.

Fire times
- `cron` is evaluated on the wall clock of `timeZone` (an IANA name, default UTC) with croniter, then mapped to
  UTC with zoneinfo. A local time that does not exist (the hour skipped when clocks go forward) never fires; a
  local time that exists twice (the hour repeated when clocks go back) fires once, at its first occurrence.
  Five fields (`min hour day month weekday`) or six with seconds first (`sec min hour day month weekday`, as the
  Functions timer trigger's NCRONTAB writes them); croniter's `@daily`-style aliases are accepted too.
- `recurrenceInterval` (ISO 8601 `PnDTnHnMnS`, whole seconds) fires every interval in UTC from `doNotRunUntil`
  when given, else from one interval after the schedule was created.
- Nothing fires before `doNotRunUntil` or after `doNotRunAfter`.

Each wake-up (`plan_wake`)
- The candidates are the fire times after the cursor (the last instant a wake-up considered) up to now. The latest
  is the due tick; every earlier one is missed: counted, never run, so a schedule that could not run for a while
  never starts a backlog (the Kubernetes CronJob lesson).
- The due tick runs when it is at most ON_TIME_SECONDS late (a durable timer on an idle Azure app fires up to one
  30 s queue poll late). A later one is a catch-up: `catchUp: latest` runs it, `skip` does not. Either way it is
  skipped once it is more than `startingDeadlineSeconds` late (when set).
- A suspended schedule runs nothing and its cursor moves on, so resuming never catches up on suspended time.

Concurrency (`decide_concurrency`), from the jobs of this schedule still running: `Allow` submits anyway, `Forbid`
skips the tick and says which job is running (Azure Batch's one active job per schedule), `Replace` cancels them
and submits the new job.

Each tick's job id is derived from the schedule id and the scheduled instant (`tick_job_id`), so a repeated or
replayed tick can only resubmit the same job, which job submission answers idempotently.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import CroniterBadCronError, CroniterBadDateError, CroniterError, croniter

from acibatch.outbound import OutboundPolicy
from acibatch.spec import STRICT_OUTBOUND, JobSpec, JobSpecInvalid, SpecError, json_type, parse_job_spec

# No '.': a tick's job id joins the schedule id and the instant with one ('nightly.20261206T020000Z'), so no
# schedule's job id can equal another schedule's. 39 characters leave room for '.manual.' and the instant
# within a job id's 63.
SCHEDULE_ID_RULE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,38}$")
ON_TIME_SECONDS = 60
MIN_INTERVAL_SECONDS = 1
MAX_INTERVAL_SECONDS = 366 * 24 * 3600
MAX_DEADLINE_SECONDS = 366 * 24 * 3600
MISSED_COUNTED_AT_MOST = 100  # beyond this a wake-up reports "at least 100" instead of walking every tick
# Walking the wall clock past a skipped DST hour with a per-second cron takes 3600 steps; this bounds the walk.
MAX_CRON_STEPS = 20_000
NEXT_RUNS_SHOWN = 5
STAMP = "%Y%m%dT%H%M%SZ"
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
DURATION = re.compile(r"^P(?:(\d{1,4})D)?(?:T(?:(\d{1,6})H)?(?:(\d{1,8})M)?(?:(\d{1,9})S)?)?$")


class ConcurrencyPolicy(StrEnum):
    ALLOW = "Allow"
    FORBID = "Forbid"
    REPLACE = "Replace"


class CatchUp(StrEnum):
    SKIP = "skip"
    LATEST = "latest"


class RunKind(StrEnum):
    SCHEDULED = "scheduled"
    MANUAL = "manual"


Choice = TypeVar("Choice", bound=StrEnum)


class ScheduleSpecInvalid(ValueError):
    def __init__(self, errors: list[SpecError]) -> None:
        super().__init__("; ".join(f"{error.path}: {error.message}" for error in errors))
        self.errors = errors


def utc_iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_instant(text: str) -> datetime:
    """An ISO 8601 instant with an offset or 'Z' (as written by `utc_iso` or a client), in UTC."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("has no offset")
    return moment.astimezone(UTC)


def whole_second(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


@dataclass(frozen=True)
class Recurrence:
    """When a schedule fires: a cron on a zone's wall clock, or a fixed interval from an anchor (UTC)."""

    cron: str | None = None
    time_zone: str = "UTC"
    interval_seconds: int | None = None
    anchor: datetime | None = None  # interval schedules only: the first fire time
    not_before: datetime | None = None
    not_after: datetime | None = None

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def next_after(self, moment: datetime) -> datetime | None:
        """The first fire time strictly after `moment` (UTC), or None when the schedule never fires again."""
        if self.not_before is not None and moment < self.not_before:
            moment = self.not_before - timedelta(microseconds=1)
        found = self._interval_next(moment) if self.interval_seconds else self._cron_next(moment)
        if found is None or (self.not_after is not None and found > self.not_after):
            return None
        return found

    def latest_at_or_before(self, moment: datetime) -> datetime | None:
        """The last fire time at or before `moment`, or None if there is none."""
        if self.not_after is not None and moment > self.not_after:
            moment = self.not_after
        found = self._interval_prev(moment) if self.interval_seconds else self._cron_prev(moment)
        if found is None or (self.not_before is not None and found < self.not_before):
            return None
        return found

    def fire_times(self, after: datetime, limit: int) -> list[datetime]:
        """Up to `limit` fire times after `after`."""
        times: list[datetime] = []
        moment: datetime | None = after
        while moment is not None and len(times) < limit:
            moment = self.next_after(moment)
            if moment is not None:
                times.append(moment)
        return times

    # -- fixed interval (UTC arithmetic) ---------------------------------------------------------------------

    def _interval_next(self, moment: datetime) -> datetime | None:
        assert self.interval_seconds and self.anchor is not None
        if moment < self.anchor:
            return self.anchor
        steps = int((moment - self.anchor).total_seconds() // self.interval_seconds) + 1
        return self.anchor + timedelta(seconds=steps * self.interval_seconds)

    def _interval_prev(self, moment: datetime) -> datetime | None:
        assert self.interval_seconds and self.anchor is not None
        if moment < self.anchor:
            return None
        steps = int((moment - self.anchor).total_seconds() // self.interval_seconds)
        return self.anchor + timedelta(seconds=steps * self.interval_seconds)

    # -- cron on a wall clock ----------------------------------------------------------------------------------
    # croniter walks naive wall-clock times; each is then mapped to UTC with fold=0 (the first of two readings).
    # On the wall times that exist that mapping only grows, so "the first fire after T" is the first wall time
    # after the latest wall time whose first reading is at or before T. During the repeated hour that wall time
    # lies ahead of T's own wall time by the DST shift; elsewhere it is T's wall time.

    def _wall_limit(self, moment: datetime) -> datetime:
        """The latest wall time whose first reading is at or before `moment` (naive, whole seconds)."""
        local = whole_second(moment).astimezone(self.zone)
        wall = local.replace(tzinfo=None)
        first_offset = wall.replace(tzinfo=self.zone, fold=0).utcoffset() or timedelta(0)
        return wall + (first_offset - (local.utcoffset() or timedelta(0)))

    def _to_utc(self, wall: datetime) -> datetime | None:
        """The first reading of a wall time in UTC, or None when the zone skips it."""
        aware = wall.replace(tzinfo=self.zone, fold=0)
        instant = aware.astimezone(UTC)
        if instant.astimezone(self.zone).replace(tzinfo=None) != wall:
            return None  # in a gap: the clock never shows this time
        return instant

    def _walk(self, start: datetime, forward: bool) -> Iterator[datetime]:
        assert self.cron is not None
        walker = croniter(self.cron, start, second_at_beginning=_has_seconds(self.cron))
        step = walker.get_next if forward else walker.get_prev
        for _ in range(MAX_CRON_STEPS):
            try:
                yield step(datetime)
            except CroniterBadDateError:  # no such date within croniter's search: the cron never fires
                return

    def _cron_next(self, moment: datetime) -> datetime | None:
        for wall in self._walk(self._wall_limit(moment), forward=True):
            instant = self._to_utc(wall)
            if instant is not None and instant > moment:
                return instant
        return None

    def _cron_prev(self, moment: datetime) -> datetime | None:
        # croniter's get_prev is strictly before its start: start one second after the limit to include it.
        for wall in self._walk(self._wall_limit(moment) + timedelta(seconds=1), forward=False):
            instant = self._to_utc(wall)
            if instant is not None and instant <= moment:
                return instant
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "cron": self.cron,
            "timeZone": self.time_zone,
            "intervalSeconds": self.interval_seconds,
            "anchor": None if self.anchor is None else utc_iso(self.anchor),
            "notBefore": None if self.not_before is None else utc_iso(self.not_before),
            "notAfter": None if self.not_after is None else utc_iso(self.not_after),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Recurrence:
        def instant(name: str) -> datetime | None:
            value = data.get(name)
            return None if value is None else parse_instant(str(value))

        return cls(
            cron=data.get("cron"),
            time_zone=str(data.get("timeZone") or "UTC"),
            interval_seconds=data.get("intervalSeconds"),
            anchor=instant("anchor"),
            not_before=instant("notBefore"),
            not_after=instant("notAfter"),
        )


def _has_seconds(cron: str) -> bool:
    return len(cron.split()) == 6


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
        croniter(cron, datetime(2000, 1, 1), second_at_beginning=_has_seconds(cron))
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


def parse_duration(text: str) -> int | None:
    """Whole seconds of an ISO 8601 duration like 'PT1H' or 'P1DT30M'; None when it is not one."""
    match = DURATION.fullmatch(text)
    if match is None or text in {"P", "PT"} or text.endswith("T"):
        return None
    days, hours, minutes, seconds = (int(part) if part else 0 for part in match.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


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


# -- tick identity -------------------------------------------------------------------------------------------


def tick_job_id(schedule_id: str, instant: datetime, kind: RunKind | str = RunKind.SCHEDULED) -> str:
    """`nightly.20261206T020000Z` for a scheduled tick, `nightly.manual.20261206T020000Z` for a trigger."""
    stamp = instant.astimezone(UTC).strftime(STAMP)
    return f"{schedule_id}.{stamp}" if kind == RunKind.SCHEDULED else f"{schedule_id}.manual.{stamp}"


# -- a wake-up's plan ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WakePlan:
    """What one wake-up does: the tick it runs (if any), why the due tick does not run, ticks it passed over,
    where the cursor moves and the next fire time after it."""

    run: datetime | None
    skipped: datetime | None
    skip_reason: str | None
    missed: int
    cursor: datetime
    next_fire: datetime | None


def plan_wake(
    recurrence: Recurrence,
    cursor: datetime,
    now: datetime,
    *,
    suspended: bool,
    catch_up: CatchUp,
    starting_deadline_seconds: int | None,
) -> WakePlan:
    due = recurrence.latest_at_or_before(now)
    if due is None or due <= cursor:
        return WakePlan(None, None, None, 0, max(cursor, now), recurrence.next_after(max(cursor, now)))
    new_cursor = max(due, now)
    next_fire = recurrence.next_after(new_cursor)
    if suspended:
        return WakePlan(None, due, "the schedule is suspended", 0, new_cursor, next_fire)
    missed = _count_between(recurrence, cursor, due)
    late = (now - due).total_seconds()
    reason = None
    if starting_deadline_seconds is not None and late > starting_deadline_seconds:
        reason = f"{late:.0f} s late, past startingDeadlineSeconds={starting_deadline_seconds}"
    elif late > ON_TIME_SECONDS and catch_up is CatchUp.SKIP:
        reason = f"{late:.0f} s late (missed while the schedule could not run) and catchUp is 'skip'"
    if reason is not None:
        return WakePlan(None, due, reason, missed, new_cursor, next_fire)
    return WakePlan(due, None, None, missed, new_cursor, next_fire)


def _count_between(recurrence: Recurrence, after: datetime, before: datetime) -> int:
    """Fire times strictly between `after` and `before`, counted up to MISSED_COUNTED_AT_MOST."""
    count, moment = 0, recurrence.next_after(after)
    while moment is not None and moment < before and count < MISSED_COUNTED_AT_MOST:
        count += 1
        moment = recurrence.next_after(moment)
    return count


# -- concurrency ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConcurrencyDecision:
    submit: bool
    cancel: tuple[str, ...] = ()
    reason: str | None = None


def decide_concurrency(policy: ConcurrencyPolicy, running: Sequence[str]) -> ConcurrencyDecision:
    """What a tick does about this schedule's jobs that are still running (`running`, oldest first)."""
    if not running or policy is ConcurrencyPolicy.ALLOW:
        return ConcurrencyDecision(submit=True)
    if policy is ConcurrencyPolicy.FORBID:
        shown = ", ".join(running[-3:])
        return ConcurrencyDecision(
            submit=False, reason=f"concurrencyPolicy is Forbid and job {shown} of this schedule is still running"
        )
    return ConcurrencyDecision(submit=True, cancel=tuple(running))


# -- durable identity and state ------------------------------------------------------------------------------

# A schedule's definition travels whole in Durable messages (the entity's state and answer, each tick's activity
# input), which Durable Task Scheduler caps at 1 MiB; this leaves room for the rest of each message.
MAX_DEFINITION_BYTES = 768 * 1024
MAX_PENDING_TRIGGERS = 10  # manual runs waiting for the next wake-up; more is a 409 (each one is one job)
RECENT_JOBS_KEPT = 20  # the jobs a schedule remembers, for its concurrency policy and `GET` (active jobs)


def definition_size(spec: ScheduleSpec) -> int:
    """Bytes of the definition as stored (compact JSON, UTF-8)."""
    return len(json.dumps(spec.to_dict(), separators=(",", ":"), ensure_ascii=False).encode())


def schedule_key(tenant: str, schedule_id: str) -> str:
    """The schedule entity's key; schedule ids hold no ':', so keys of different tenants never meet."""
    return f"{tenant}:{schedule_id}"


def schedule_instance_id(tenant: str, schedule_id: str) -> str:
    return f"schedule:{tenant}:{schedule_id}"


def schedule_input(tenant: str, schedule_id: str, cursor: str) -> dict[str, str]:
    """The schedule orchestration's input: whose schedule, and the last instant a wake-up considered."""
    return {"tenant": tenant, "scheduleId": schedule_id, "cursor": cursor}


@dataclass
class ScheduleState:
    """The `schedule` entity's state: the definition (None once deleted), the suspend flag, manual runs not
    started yet, and what the schedule did last (for `GET`). `version` is the last API change applied, so the
    API can tell when its signal took effect."""

    tenant: str = ""
    schedule_id: str = ""
    definition: dict[str, Any] | None = None
    sealed_secure_env: str | None = None
    version: str = ""
    created_at: str | None = None
    updated_at: str | None = None
    suspended: bool = False
    triggers: list[str] = field(default_factory=list)
    last_run: dict[str, Any] | None = None
    last_skip: dict[str, Any] | None = None
    recent_jobs: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: {"submitted": 0, "skipped": 0, "missed": 0})

    @property
    def exists(self) -> bool:
        return self.definition is not None

    def spec(self) -> ScheduleSpec:
        assert self.definition is not None
        return ScheduleSpec.from_dict(self.definition)

    def to_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "scheduleId": self.schedule_id,
            "definition": self.definition,
            "sealedSecureEnv": self.sealed_secure_env,
            "version": self.version,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "suspended": self.suspended,
            "triggers": list(self.triggers),
            "lastRun": self.last_run,
            "lastSkip": self.last_skip,
            "recentJobs": list(self.recent_jobs),
            "counts": dict(self.counts),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> ScheduleState:
        if not data:
            return cls()
        return cls(
            tenant=str(data.get("tenant", "")),
            schedule_id=str(data.get("scheduleId", "")),
            definition=data.get("definition"),
            sealed_secure_env=data.get("sealedSecureEnv"),
            version=str(data.get("version", "")),
            created_at=data.get("createdAt"),
            updated_at=data.get("updatedAt"),
            suspended=bool(data.get("suspended", False)),
            triggers=list(data.get("triggers") or []),
            last_run=data.get("lastRun"),
            last_skip=data.get("lastSkip"),
            recent_jobs=list(data.get("recentJobs") or []),
            counts={"submitted": 0, "skipped": 0, "missed": 0, **(data.get("counts") or {})},
        )


def apply_schedule_operation(state: ScheduleState, operation: str, data: Any) -> tuple[ScheduleState, Any]:
    """The entity's operations; returns the new state and the operation's result."""
    if operation == "get":
        return state, state.to_dict()
    if operation == "put":
        fresh = state if state.exists else ScheduleState(created_at=data["at"])
        fresh.tenant, fresh.schedule_id = data["tenant"], data["scheduleId"]
        fresh.definition, fresh.sealed_secure_env = data["definition"], data.get("sealedSecureEnv")
        fresh.suspended = bool(data["definition"].get("suspend", False))
        fresh.updated_at, fresh.version = data["at"], data["version"]
        return fresh, None
    if operation == "delete":
        return ScheduleState(version=data["version"]), None
    if not state.exists:
        return state, None  # suspend/resume/trigger of a deleted schedule change nothing
    if operation in ("suspend", "resume"):
        state.suspended = operation == "suspend"
        state.updated_at, state.version = data["at"], data["version"]
        return state, None
    if operation == "trigger":
        if data["at"] not in state.triggers and len(state.triggers) < MAX_PENDING_TRIGGERS:
            state.triggers.append(data["at"])
        state.version = data["version"]
        return state, None
    if operation == "record":
        return record_wake(state, data), None
    raise ValueError(f"schedule entity has no operation '{operation}'")


def record_wake(state: ScheduleState, data: Mapping[str, Any]) -> ScheduleState:
    """What one wake-up of the orchestration did: runs submitted or skipped, ticks missed, triggers handled."""
    done = set(data.get("triggersDone") or [])
    state.triggers = [at for at in state.triggers if at not in done]
    state.counts["missed"] += int(data.get("missed", 0))
    skipped = data.get("skipped")
    if skipped:
        state.counts["skipped"] += 1
        state.last_skip = dict(skipped)
    for run in data.get("runs") or []:
        if run.get("jobId") and run.get("submitted"):
            state.counts["submitted"] += 1
            state.last_run = dict(run)
            if run["jobId"] not in state.recent_jobs:
                state.recent_jobs = [*state.recent_jobs, run["jobId"]][-RECENT_JOBS_KEPT:]
        else:
            state.counts["skipped"] += 1
            state.last_skip = dict(run)
    return state
