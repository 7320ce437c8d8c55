"""When a schedule fires. Pure: every function takes the instants it reasons about and touches no clock, so the
schedule orchestrator can call them during replay and get the same answers.

- `cron` is evaluated on the wall clock of `timeZone` (an IANA name, default UTC) with croniter, then mapped to
  UTC with zoneinfo. A local time that does not exist (the hour skipped when clocks go forward) never fires; a
  local time that exists twice (the hour repeated when clocks go back) fires once, at its first occurrence.
  Five fields (`min hour day month weekday`) or six with seconds first (`sec min hour day month weekday`, as the
  Functions timer trigger's NCRONTAB writes them); croniter's `@daily`-style aliases are accepted too.
- `recurrenceInterval` (ISO 8601 `PnDTnHnMnS`, whole seconds) fires every interval in UTC from `doNotRunUntil`
  when given, else from one interval after the schedule was created.
- Nothing fires before `doNotRunUntil` or after `doNotRunAfter`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from croniter import CroniterBadDateError, croniter
from pydantic import BeforeValidator, PlainSerializer

from acibatch.models.base import StoredModel

MIN_INTERVAL_SECONDS = 1
MAX_INTERVAL_SECONDS = 366 * 24 * 3600
# Walking the wall clock past a skipped DST hour with a per-second cron takes 3600 steps; this bounds the walk.
MAX_CRON_STEPS = 20_000
NEXT_RUNS_SHOWN = 5
DURATION = re.compile(r"^P(?:(\d{1,4})D)?(?:T(?:(\d{1,6})H)?(?:(\d{1,8})M)?(?:(\d{1,9})S)?)?$")


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


def _stored_instant(value: Any) -> Any:
    return parse_instant(value) if isinstance(value, str) else value


# Stored as `utc_iso` writes it (whole seconds, 'Z'), as it always was: in-flight schedule entities hold this form.
UtcInstant = Annotated[datetime, BeforeValidator(_stored_instant), PlainSerializer(utc_iso, return_type=str)]


class Recurrence(StoredModel):
    """When a schedule fires: a cron on a zone's wall clock, or a fixed interval from an anchor (UTC). Its
    `to_dict()` is the stored form (camelCase, instants by `utc_iso`)."""

    cron: str | None = None
    time_zone: str = "UTC"
    interval_seconds: int | None = None
    anchor: UtcInstant | None = None  # interval schedules only: the first fire time
    not_before: UtcInstant | None = None
    not_after: UtcInstant | None = None

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
        walker = croniter(self.cron, start, second_at_beginning=has_seconds(self.cron))
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


def has_seconds(cron: str) -> bool:
    return len(cron.split()) == 6


def parse_duration(text: str) -> int | None:
    """Whole seconds of an ISO 8601 duration like 'PT1H' or 'P1DT30M'; None when it is not one."""
    match = DURATION.fullmatch(text)
    if match is None or text in {"P", "PT"} or text.endswith("T"):
        return None
    days, hours, minutes, seconds = (int(part) if part else 0 for part in match.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds
