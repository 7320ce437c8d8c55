"""6-field NCRONTAB schedules (`sec min hour day month weekday`), as Azure Functions timer triggers use them."""

from __future__ import annotations

from datetime import datetime, timedelta

_RANGES = ((0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (0, 6))
_NAMES = {
    4: {m: i + 1 for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())},  # noqa: SIM905
    5: {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())},  # noqa: SIM905
}


class ScheduleError(ValueError):
    pass


def _field(text: str, index: int) -> frozenset[int]:
    low, high = _RANGES[index]
    values: set[int] = set()
    for item in text.lower().split(","):
        part, step = item, 1
        if "/" in item:
            part, step_text = item.split("/", 1)
            step = int(step_text)
            if step < 1:
                raise ScheduleError(f"step must be positive in '{text}'")
        if part in {"*", ""}:
            start, end = low, high
        elif "-" in part:
            first, last = part.split("-", 1)
            start, end = _value(first, index), _value(last, index)
        else:
            start = _value(part, index)
            end = high if step > 1 else start
        if not (low <= start <= high and low <= end <= high):
            raise ScheduleError(f"'{text}' is outside {low}-{high}")
        values.update(range(start, end + 1, step))
    return frozenset(7 % 7 if index == 5 and v == 7 else v for v in values)


def _value(text: str, index: int) -> int:
    names = _NAMES.get(index, {})
    if text in names:
        return names[text]
    if not text.isdigit():
        raise ScheduleError(f"'{text}' is not a number")
    return int(text)


class Schedule:
    def __init__(self, expression: str) -> None:
        parts = expression.split()
        if len(parts) != 6:
            raise ScheduleError(f"'{expression}' must have 6 fields: second minute hour day month day-of-week")
        try:
            self.fields = [_field(part, index) for index, part in enumerate(parts)]
        except ValueError as error:
            raise ScheduleError(f"invalid schedule '{expression}': {error}") from None
        self.expression = expression

    def next_after(self, moment: datetime) -> datetime:
        """The first matching second strictly after `moment`."""
        seconds, minutes, hours, days, months, weekdays = self.fields
        candidate = moment.replace(microsecond=0) + timedelta(seconds=1)
        for _ in range(366 * 24 * 60 * 4):
            if candidate.month not in months:
                candidate = (candidate.replace(day=1, hour=0, minute=0, second=0) + timedelta(days=32)).replace(day=1)
                continue
            if candidate.day not in days or (candidate.isoweekday() % 7) not in weekdays:
                candidate = candidate.replace(hour=0, minute=0, second=0) + timedelta(days=1)
                continue
            if candidate.hour not in hours:
                candidate = candidate.replace(minute=0, second=0) + timedelta(hours=1)
                continue
            if candidate.minute not in minutes:
                candidate = candidate.replace(second=0) + timedelta(minutes=1)
                continue
            if candidate.second not in seconds:
                candidate += timedelta(seconds=1)
                continue
            return candidate
        raise ScheduleError(f"schedule '{self.expression}' never fires")
