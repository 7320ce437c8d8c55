"""devhost's timer schedules against known NCRONTAB answers: the examples of the Functions timer-trigger docs
(MicrosoftDocs/azure-docs, functions-bindings-timer.md, "NCRONTAB examples"), occurrences NCrontab's own tests pin
(atifaziz/NCrontab, NCrontab.Tests/CrontabScheduleTests.cs), and what the host's `CronSchedule.TryCreate`
(azure-webjobs-sdk-extensions) accepts and refuses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from devhost.ncrontab import Field, Schedule, ScheduleError, field_values


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def upcoming(expression: str, start: str, count: int) -> list[str]:
    schedule, moment, found = Schedule(expression), at(start), []
    for _ in range(count):
        moment = schedule.next_after(moment)
        found.append(moment.strftime("%Y-%m-%d %H:%M:%S %a"))
    return found


# The docs' examples, from Sunday 2026-12-06 06:30:10 UTC.
DOCS_EXAMPLES = {
    "0 */5 * * * *": ["2026-12-06 06:35:00 Sun", "2026-12-06 06:40:00 Sun", "2026-12-06 06:45:00 Sun"],
    "0 0 * * * *": ["2026-12-06 07:00:00 Sun", "2026-12-06 08:00:00 Sun", "2026-12-06 09:00:00 Sun"],
    "0 0 */2 * * *": ["2026-12-06 08:00:00 Sun", "2026-12-06 10:00:00 Sun", "2026-12-06 12:00:00 Sun"],
    "0 0 9-17 * * *": ["2026-12-06 09:00:00 Sun", "2026-12-06 10:00:00 Sun", "2026-12-06 11:00:00 Sun"],
    "0 30 9 * * *": ["2026-12-06 09:30:00 Sun", "2026-12-07 09:30:00 Mon", "2026-12-08 09:30:00 Tue"],
    "0 30 9 * * 1-5": ["2026-12-07 09:30:00 Mon", "2026-12-08 09:30:00 Tue", "2026-12-09 09:30:00 Wed"],
    "0 30 9 * Jan Mon": ["2027-01-04 09:30:00 Mon", "2027-01-11 09:30:00 Mon", "2027-01-18 09:30:00 Mon"],
    # The docs' table of field forms: a value, every value, a range, a set, an interval.
    "0 5 * * * *": ["2026-12-06 07:05:00 Sun", "2026-12-06 08:05:00 Sun", "2026-12-06 09:05:00 Sun"],
    "0 * 5 * * *": ["2026-12-07 05:00:00 Mon", "2026-12-07 05:01:00 Mon", "2026-12-07 05:02:00 Mon"],
    "5-7 * * * * *": ["2026-12-06 06:31:05 Sun", "2026-12-06 06:31:06 Sun", "2026-12-06 06:31:07 Sun"],
    "5,8,10 * * * * *": ["2026-12-06 06:31:05 Sun", "2026-12-06 06:31:08 Sun", "2026-12-06 06:31:10 Sun"],
}


@pytest.mark.parametrize(("expression", "expected"), DOCS_EXAMPLES.items())
def test_the_docs_ncrontab_examples_fire_when_the_docs_say(expression: str, expected: list[str]) -> None:
    assert upcoming(expression, "2026-12-06 06:30:10", len(expected)) == expected


# (expression, start, next occurrence) pinned by NCrontab's tests; five-field ones are read without seconds.
NCRONTAB_CASES = [
    ("45-47,48,49 * * * * *", "2003-01-01 00:00:49", "2003-01-01 00:01:45"),
    ("2/5 * * * * *", "2003-01-01 00:00:57", "2003-01-01 00:01:02"),  # a value with a step runs to the maximum
    ("* 0-1 10 * * *", "2021-02-24 09:50:35", "2021-02-24 10:00:00"),
    ("9 2/5 * * * *", "2003-01-01 00:57:30", "2003-01-01 01:02:09"),
    ("10 30 12 * * Mon", "2003-01-01 00:00:00", "2003-01-06 12:30:10"),
    ("0 0 15,30,31 * *", "2000-01-31 00:00:00", "2000-02-15 00:00:00"),  # no Feb 30 or 31
    ("0 0 15,30,31 * *", "2000-04-30 00:00:00", "2000-05-15 00:00:00"),  # no Apr 31
    ("10 * * February,April-Jun *", "2002-07-01 05:00:00", "2003-02-01 00:10:00"),
    (
        "20 * * january,FeB,Mar,april,May,JuNE,July,Augu,SEPT-October,Nov,DECEM *",
        "1988-03-11 14:23:00",
        "1988-03-11 15:20:00",
    ),
    ("30 6 * * SUNDAY", "2003-06-26 10:00:00", "2003-06-29 06:30:00"),
    ("45 16 1 * Mon", "2003-01-01 12:00:00", "2003-09-01 16:45:00"),  # day AND weekday: the 1st that is a Monday
    ("45 16 1 * Mon", "2003-09-01 23:45:00", "2003-12-01 16:45:00"),
    ("1 12 29 2 *", "2000-02-29 12:01:00", "2004-02-29 12:01:00"),
    ("0 0 29 Feb Mon", "9000-01-01 00:00:00", "9008-02-29 00:00:00"),
    ("40 14/1 * * *", "2000-01-01 14:40:00", "2000-01-01 15:40:00"),
]


@pytest.mark.parametrize(("expression", "start", "expected"), NCRONTAB_CASES)
def test_next_occurrences_match_ncrontab(expression: str, start: str, expected: str) -> None:
    assert Schedule(expression).next_after(at(start)) == at(expected)


def test_next_after_is_strictly_later_even_inside_a_matching_second() -> None:
    every_second = Schedule("* * * * * *")
    assert every_second.next_after(at("2026-12-06 06:30:10")) == at("2026-12-06 06:30:11")
    assert every_second.next_after(at("2026-12-06 06:30:10.999")) == at("2026-12-06 06:30:11")


def test_the_host_reads_five_fields_without_seconds() -> None:
    # CronSchedule.HasSeconds: anything but five space-separated fields is read with seconds.
    assert Schedule("30 9 * * *").next_after(at("2026-12-06 06:30:10")) == at("2026-12-06 09:30:00")
    assert Schedule(" 0  30 9   * * * ").next_after(at("2026-12-06 06:30:10")) == at("2026-12-06 09:30:00")


def test_ncrontab_quirks_croniter_reads_otherwise() -> None:
    start = at("2026-12-06 06:30:10")  # a Sunday
    # A reversed range is swapped: Monday to Friday, not Friday round to Monday.
    assert Schedule("0 0 9 * * 5-1").fields[5] == frozenset({1, 2, 3, 4, 5})
    assert Schedule("0 0 9 * * 5-1").next_after(start) == at("2026-12-07 09:00:00")
    # A single-day range is that day (croniter alone reads `5-5` as every day).
    assert Schedule("0 0 0 * * 5-5").next_after(start) == at("2026-12-11 00:00:00")
    # A step below 1 means every value.
    assert Schedule("*/0 * * * * *").next_after(start) == at("2026-12-06 06:30:11")
    # Names match by prefix of the full English name, any case, the first in order winning ("M" is March).
    assert field_values("M,sept,DECEMBER", Field.MONTH) == frozenset({3, 9, 12})
    assert field_values("t-th", Field.WEEKDAY) == frozenset({2, 3, 4})
    assert field_values("sat/2", Field.WEEKDAY) == frozenset({6})
    assert field_values("1-5/2,30", Field.MINUTE) == frozenset({1, 3, 5, 30})


@pytest.mark.parametrize(
    ("expression", "says"),
    [
        ("0 0 0 * * 7", "7 is outside 0-6 (day-of-week)"),  # NCrontab's weekdays stop at Saturday = 6
        ("60 * * * * *", "60 is outside 0-59 (second)"),
        ("0 0 0 0 * *", "0 is outside 1-31 (day)"),
        ("0 0 0 * 13 *", "13 is outside 1-12 (month)"),
        ("0 0 0 L * *", "'L' is not a number between 1 and 31 (day)"),
        ("0 0 0 ? * *", "'?' is not a number between 1 and 31 (day)"),
        ("0 0 0 * * 1#2", "'1#2' is not a number (day-of-week)"),
        ("0 0 0 * * mon,bad,wed", "'bad' is not a day-of-week name"),
        ("0 1,Z,3 * * * *", "'Z' is not a number between 0 and 59 (minute)"),
        ("0 1/Z * * * *", "the step in '1/Z' (minute) must be a whole number"),
        ("0 3-l2 * * * *", "'l2' is not a number between 0 and 59 (minute)"),
        ("0 5, * * * *", "has an empty list item"),
        ("0 */99999999999 * * * *", "must be a whole number"),
        ("@daily", "must have 6 fields"),
        ("* * * *", "must have 6 fields"),
        ("0 0 0 * * * 2026", "must have 6 fields"),
        ("0\t0 0 * * *", "'0\t0' is not a number (minute)"),  # a tab is no separator
    ],
)
def test_what_the_host_refuses_is_refused_with_the_reason(expression: str, says: str) -> None:
    with pytest.raises(ScheduleError) as refused:
        Schedule(expression)
    assert says in str(refused.value)


def test_a_date_that_never_comes_says_so_instead_of_waiting() -> None:
    with pytest.raises(ScheduleError, match="never fires"):
        Schedule("0 0 0 31 2 *").next_after(at("2026-12-06 06:30:10"))


def test_every_occurrence_matches_every_field_and_none_is_skipped() -> None:
    """A day of a busy schedule, second by second: croniter's answers are exactly the matching seconds."""
    schedule = Schedule("*/20 0-1,59 */3 * * 0,6")
    moment, end, found = at("2026-12-05 23:59:00"), at("2026-12-06 00:02:00"), []
    while (moment := schedule.next_after(moment)) < end:
        found.append(moment)
    fields = schedule.fields
    expected = [
        second
        for second in (at("2026-12-05 23:59:01") + timedelta(seconds=n) for n in range(180))
        if second.second in fields[0] and second.minute in fields[1] and second.hour in fields[2]
        and second.isoweekday() % 7 in fields[5]
    ]  # fmt: skip
    assert found == expected and len(found) == 6
