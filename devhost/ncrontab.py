"""Timer-trigger schedules: the Functions host's NCRONTAB grammar, with croniter finding the occurrences.

What the host accepts and refuses is NCrontab's grammar, so this module holds that door and leaves the calendar
arithmetic to croniter:
- Six fields, seconds first, unless exactly five are given, which are read without seconds (second 0). The host
  decides by counting space-separated fields (azure-webjobs-sdk-extensions, Timers/Scheduling/CronSchedule.cs,
  `TryCreate` / `HasSeconds`), and NCrontab splits on spaces only (atifaziz/NCrontab, CrontabSchedule.cs,
  `TryParse`): a tab is not a separator.
- Each field is a comma list of `*`, `n` or `a-b`, each with an optional `/step`. A single value with a step runs
  to the field's maximum (`5/15` in seconds is 5,20,35,50); a reversed range is swapped (`5-1` is `1-5`); a step
  below 1 means 1 (NCrontab, CrontabFieldImpl.cs `InternalParse`, CrontabField.cs `Accumulate`).
- Months and weekdays take English names, any case, by prefix of the full name (`Mon`, `monday`, `Augu`), the
  first match winning (CrontabFieldImpl.cs `ParseValue`). Weekdays are 0-6 from Sunday: 7 is refused.
- Day of month and weekday must both match (NCrontab, CrontabSchedule.cs `TryGetNextOccurrence`), unlike Vixie
  cron's either-one: croniter runs with `day_or=False`.
- Nothing else: no `?`, `L`, `W`, `#` or `@daily` (croniter would take them, the host does not).

croniter is never handed a range: each field goes to it as the explicit list of values NCrontab would set (or `*`),
the form both read alike. The host evaluates schedules on the machine's local clock (UTC on Azure unless
WEBSITE_TIME_ZONE is set); devhost evaluates them in UTC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from croniter import CroniterError, croniter

_MONTH_NAMES = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
                "november", "december")  # fmt: skip
_WEEKDAY_NAMES = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
_STEP = re.compile(r"[+-]?\d+")  # what .NET's int.Parse takes
# int.Parse overflows past this, and the host fails to index the function.
_INT32_MAX = 2**31 - 1


class ScheduleError(ValueError):
    pass


@dataclass(frozen=True)
class _Range:
    label: str  # also keeps two fields with the same bounds apart: equal values would make one Enum an alias
    low: int
    high: int
    names: tuple[str, ...] = ()


class Field(Enum):
    """The six NCRONTAB fields in order, with the values each takes."""

    SECOND = _Range("second", 0, 59)
    MINUTE = _Range("minute", 0, 59)
    HOUR = _Range("hour", 0, 23)
    DAY = _Range("day", 1, 31)
    MONTH = _Range("month", 1, 12, _MONTH_NAMES)
    WEEKDAY = _Range("day-of-week", 0, 6, _WEEKDAY_NAMES)

    @property
    def label(self) -> str:
        return self.value.label


FIELDS = tuple(Field)
WITHOUT_SECONDS = len(FIELDS) - 1
_USAGE = "second minute hour day month day-of-week (or the five without seconds)"


def field_values(text: str, kind: Field) -> frozenset[int]:
    """The values one field's text selects, or ScheduleError saying what the host would refuse in it."""
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise ScheduleError(f"the {kind.label} field '{text}' has an empty list item")
        values.update(_item_values(item, kind))
    return frozenset(values)


def _item_values(item: str, kind: Field) -> range:
    bounds = kind.value
    base, step = item, None
    if item.find("/") > 0:
        base, step_text = item.split("/", 1)
        if not _STEP.fullmatch(step_text) or abs(int(step_text)) > _INT32_MAX:
            raise ScheduleError(f"the step in '{item}' ({kind.label}) must be a whole number")
        step = max(int(step_text), 1)
    if base == "*":
        return range(bounds.low, bounds.high + 1, step or 1)
    if base.find("-") > 0:
        first_text, last_text = base.split("-", 1)
        first, last = sorted((_value(first_text, kind), _value(last_text, kind)))
        return range(first, last + 1, step or 1)
    first = _value(base, kind)
    return range(first, bounds.high + 1, step) if step else range(first, first + 1)


def _value(text: str, kind: Field) -> int:
    bounds = kind.value
    if text[:1].isdigit():
        if not text.isdigit() or not text.isascii():
            raise ScheduleError(f"'{text}' is not a number ({kind.label})")
        number = int(text)
        if not bounds.low <= number <= bounds.high:
            raise ScheduleError(f"{number} is outside {bounds.low}-{bounds.high} ({kind.label})")
        return number
    if bounds.names and text:
        for offset, name in enumerate(bounds.names):
            if name.startswith(text.lower()):
                return bounds.low + offset
        raise ScheduleError(f"'{text}' is not a {kind.label} name: use one of {', '.join(bounds.names)}")
    raise ScheduleError(f"'{text}' is not a number between {bounds.low} and {bounds.high} ({kind.label})")


def _croniter_field(values: frozenset[int], kind: Field) -> str:
    if len(values) == kind.value.high - kind.value.low + 1:
        return "*"
    return ",".join(str(value) for value in sorted(values))


class Schedule:
    """One timer trigger's schedule; `next_after` is what the host's timer waits for."""

    def __init__(self, expression: str) -> None:
        parts = [part for part in expression.split(" ") if part]
        if len(parts) == WITHOUT_SECONDS:
            parts.insert(0, "0")
        if len(parts) != len(FIELDS):
            raise ScheduleError(f"'{expression}' must have 6 fields: {_USAGE}")
        try:
            self.fields = tuple(field_values(part, kind) for part, kind in zip(parts, FIELDS, strict=True))
        except ScheduleError as error:
            raise ScheduleError(f"invalid schedule '{expression}': {error}") from None
        self.expression = expression
        self._cron = " ".join(_croniter_field(values, kind) for values, kind in zip(self.fields, FIELDS, strict=True))

    def next_after(self, moment: datetime) -> datetime:
        """The first matching second strictly after `moment`."""
        try:
            found: datetime = croniter(self._cron, moment, second_at_beginning=True, day_or=False).get_next(datetime)
        except CroniterError:  # a date that never comes (`0 0 0 31 2 *`): croniter gives up its search
            raise ScheduleError(f"schedule '{self.expression}' never fires") from None
        return found
