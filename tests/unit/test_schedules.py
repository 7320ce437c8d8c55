"""Schedule logic: validation messages, fire times across DST in two zones, the wake-up plan (missed ticks,
catch-up, starting deadline, suspension), concurrency decisions and tick job ids."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from acibatch.schedules import (
    MAX_DEFINITION_BYTES,
    MAX_PENDING_TRIGGERS,
    MISSED_COUNTED_AT_MOST,
    ON_TIME_SECONDS,
    CatchUp,
    ConcurrencyPolicy,
    Recurrence,
    RunKind,
    ScheduleSpec,
    ScheduleSpecInvalid,
    ScheduleState,
    apply_schedule_operation,
    decide_concurrency,
    definition_size,
    parse_duration,
    parse_schedule_spec,
    plan_wake,
    record_wake,
    tick_job_id,
)
from acibatch.spec import ID_RULE

CREATED = datetime(2026, 1, 5, 9, 0, 0, tzinfo=UTC)
JOB = {"image": "registry.example.com/team/worker:1", "taskCount": 2}


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def spec(**fields: Any) -> ScheduleSpec:
    body = {"schedule": {"cron": "0 2 * * *"}, "jobSpecification": JOB, **fields}
    return parse_schedule_spec(body, created_at=CREATED)


def errors(body: Any) -> dict[str, str]:
    with pytest.raises(ScheduleSpecInvalid) as caught:
        parse_schedule_spec(body, created_at=CREATED)
    return {error.path: error.message for error in caught.value.errors}


# -- validation ------------------------------------------------------------------------------------------------


def test_a_valid_schedule_round_trips_through_its_durable_form() -> None:
    parsed = spec(
        schedule={"cron": "0  2 * * 1-5", "timeZone": "Europe/Berlin"},
        concurrencyPolicy="Forbid",
        catchUp="latest",
        startingDeadlineSeconds=600,
        doNotRunUntil="2026-02-01T00:00:00Z",
    )
    assert parsed.recurrence.cron == "0 2 * * 1-5"  # whitespace normalized
    assert parsed.concurrency_policy is ConcurrencyPolicy.FORBID and parsed.catch_up is CatchUp.LATEST
    again = ScheduleSpec.from_dict(parsed.to_dict())
    assert again == parsed


def test_defaults_are_allow_skip_not_suspended_and_utc() -> None:
    parsed = spec()
    assert (parsed.concurrency_policy, parsed.catch_up, parsed.suspend) == (
        ConcurrencyPolicy.ALLOW,
        CatchUp.SKIP,
        False,
    )
    assert parsed.recurrence.time_zone == "UTC" and parsed.starting_deadline_seconds is None


def test_secure_values_are_hidden_in_the_shown_request_and_absent_from_the_durable_form() -> None:
    parsed = spec(jobSpecification={**JOB, "secureEnv": {"TOKEN": "s3cret"}})
    assert parsed.job.secure_env == {"TOKEN": "s3cret"}
    shown = parsed.public()["jobSpecification"]
    assert shown["secureEnv"] == {"TOKEN": "(hidden)"} and shown["taskCount"] == 2 and "tasks" not in shown
    assert "s3cret" not in repr(parsed.to_dict()) and "s3cret" not in repr(parsed.public())
    stored = ScheduleSpec.from_dict(parsed.to_dict())
    assert stored.job.secure_env == {} and stored.public()["jobSpecification"]["secureEnv"] == {"TOKEN": "(hidden)"}
    named = spec(jobSpecification={"image": JOB["image"], "tasks": [{"id": "a"}, {"id": "b"}]})
    assert [task["id"] for task in named.public()["jobSpecification"]["tasks"]] == ["a", "b"]


@pytest.mark.parametrize(
    ("schedule", "path", "fragment"),
    [
        ({"cron": "0 2 * *"}, "schedule.cron", "has 4 fields; give 5"),
        ({"cron": "0 0 2 * * * 2026"}, "schedule.cron", "has 7 fields"),
        ({"cron": "61 2 * * *"}, "schedule.cron", "not a valid cron expression"),
        ({"cron": "0 0 31 2 *"}, "schedule.cron", "never fires"),
        ({"cron": 5}, "schedule.cron", "must be a cron expression"),
        ({"cron": "0 2 * * *", "timeZone": "Mars/Olympus"}, "schedule.timeZone", "'Mars/Olympus' is not an IANA"),
        ({"cron": "0 2 * * *", "timeZone": 1}, "schedule.timeZone", "not a number"),
        ({"recurrenceInterval": "1h"}, "schedule.recurrenceInterval", "ISO 8601 duration"),
        ({"recurrenceInterval": "PT0S"}, "schedule.recurrenceInterval", "from 1 s"),
        ({"recurrenceInterval": "PT0.5S"}, "schedule.recurrenceInterval", "whole seconds"),
        ({"cron": "0 2 * * *", "recurrenceInterval": "PT1H"}, "schedule", "exactly one of"),
        ({}, "schedule", "exactly one of"),
        ({"cron": "0 2 * * *", "every": 1}, "schedule.every", "unknown field"),
    ],
)
def test_an_invalid_recurrence_is_refused_saying_what_is_wrong(schedule: Any, path: str, fragment: str) -> None:
    found = errors({"schedule": schedule, "jobSpecification": JOB})
    assert fragment in found[path], found


def test_every_error_is_listed_with_its_path() -> None:
    found = errors(
        {
            "schedule": "daily",
            "concurrencyPolicy": "Sometimes",
            "catchUp": "all",
            "startingDeadlineSeconds": 0,
            "suspend": "no",
            "doNotRunUntil": "tomorrow",
            "keepJobs": {"succeeded": 3},
            "jobSpecification": {"jobId": "x", "image": "NOT AN IMAGE"},
        }
    )
    assert set(found) == {
        "schedule",
        "concurrencyPolicy",
        "catchUp",
        "startingDeadlineSeconds",
        "suspend",
        "doNotRunUntil",
        "keepJobs",
        "jobSpecification.jobId",
    }
    assert "'Allow', 'Forbid', 'Replace'" in found["concurrencyPolicy"] and "'skip', 'latest'" in found["catchUp"]
    assert "not supported yet" in found["keepJobs"]


def test_job_specification_errors_carry_its_path() -> None:
    found = errors({"schedule": {"cron": "0 2 * * *"}, "jobSpecification": {"image": "NOT AN IMAGE", "cpu": 99}})
    assert {"jobSpecification.image", "jobSpecification.cpu"} <= set(found)
    assert "must be a JSON object" in errors({"schedule": {"cron": "0 2 * * *"}})["jobSpecification.body"]


def test_do_not_run_after_must_follow_do_not_run_until() -> None:
    found = errors(
        {
            "schedule": {"cron": "0 2 * * *"},
            "doNotRunUntil": "2026-03-01T00:00:00Z",
            "doNotRunAfter": "2026-02-01T00:00:00+01:00",
            "jobSpecification": JOB,
        }
    )
    assert found == {"doNotRunAfter": "must be later than doNotRunUntil"}


def test_a_body_that_is_not_an_object() -> None:
    assert errors([1]) == {"body": "must be a JSON object describing the schedule"}


def test_iso_durations() -> None:
    assert parse_duration("PT1H") == 3600
    assert parse_duration("P1DT30M") == 86400 + 1800
    assert parse_duration("PT90S") == 90
    assert [parse_duration(text) for text in ("P", "PT", "P1DT", "1H", "PT1.5S", "-PT1H")] == [None] * 6


# -- fire times ------------------------------------------------------------------------------------------------


def test_six_fields_have_seconds_first() -> None:
    every_five = Recurrence(cron="*/5 * * * * *")
    assert every_five.fire_times(utc(2026, 1, 1, 0, 0, 2), 3) == [
        utc(2026, 1, 1, 0, 0, 5),
        utc(2026, 1, 1, 0, 0, 10),
        utc(2026, 1, 1, 0, 0, 15),
    ]
    # strictly after: a moment that is itself a fire time (even with microseconds before it) is not returned
    assert every_five.next_after(utc(2026, 1, 1, 0, 0, 5)) == utc(2026, 1, 1, 0, 0, 10)
    assert every_five.next_after(utc(2026, 1, 1, 0, 0, 4) + timedelta(microseconds=999_999)) == utc(2026, 1, 1, 0, 0, 5)
    assert every_five.latest_at_or_before(utc(2026, 1, 1, 0, 0, 5)) == utc(2026, 1, 1, 0, 0, 5)
    assert every_five.latest_at_or_before(utc(2026, 1, 1, 0, 0, 9)) == utc(2026, 1, 1, 0, 0, 5)


def test_aliases_are_accepted() -> None:
    daily = spec(schedule={"cron": "@daily"}).recurrence
    assert daily.next_after(CREATED) == utc(2026, 1, 6)


# Europe/Berlin 2026: clocks go forward 29 March 02:00 -> 03:00, back 25 October 03:00 -> 02:00.
BERLIN = "Europe/Berlin"
# America/New_York 2026: forward 8 March 02:00 -> 03:00, back 1 November 02:00 -> 01:00.
NEW_YORK = "America/New_York"


def test_berlin_a_daily_run_in_the_skipped_hour_does_not_run_that_day() -> None:
    nightly = Recurrence(cron="30 2 * * *", time_zone=BERLIN)
    assert nightly.fire_times(utc(2026, 3, 27), 4) == [
        utc(2026, 3, 27, 1, 30),  # 02:30 CET
        utc(2026, 3, 28, 1, 30),
        # 29 March: 02:30 never shows on a Berlin clock
        utc(2026, 3, 30, 0, 30),  # 02:30 CEST
        utc(2026, 3, 31, 0, 30),
    ]


def test_berlin_a_daily_run_in_the_repeated_hour_runs_once_at_its_first_occurrence() -> None:
    nightly = Recurrence(cron="30 2 * * *", time_zone=BERLIN)
    assert nightly.fire_times(utc(2026, 10, 24, 12), 2) == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]
    # Asked from inside the second 02:00-03:00 (01:15 UTC = 02:15 CET), the 02:30 already ran (00:30 UTC).
    assert nightly.next_after(utc(2026, 10, 25, 1, 15)) == utc(2026, 10, 26, 1, 30)
    assert nightly.latest_at_or_before(utc(2026, 10, 25, 1, 45)) == utc(2026, 10, 25, 0, 30)


def test_berlin_hourly_runs_skip_the_gap_and_do_not_repeat_in_the_overlap() -> None:
    hourly = Recurrence(cron="0 * * * *", time_zone=BERLIN)
    spring = hourly.fire_times(utc(2026, 3, 28, 23, 30), 4)  # from 00:30 CET
    assert spring == [utc(2026, 3, 29, 0), utc(2026, 3, 29, 1), utc(2026, 3, 29, 2), utc(2026, 3, 29, 3)]
    # local 01:00 CET, 03:00 CEST, 04:00, 05:00: one fewer run that night, still one per elapsed hour
    autumn = hourly.fire_times(utc(2026, 10, 24, 23, 30), 4)  # from 01:30 CEST
    assert autumn == [utc(2026, 10, 25, 0), utc(2026, 10, 25, 2), utc(2026, 10, 25, 3), utc(2026, 10, 25, 4)]
    # local 02:00 CEST, then 03:00 CET: the second 02:00 (01:00 UTC) does not run


def test_new_york_minutes_in_the_repeated_hour_run_once_each() -> None:
    every_20 = Recurrence(cron="*/20 1 * * *", time_zone=NEW_YORK)
    assert every_20.fire_times(utc(2026, 11, 1, 4), 4) == [
        utc(2026, 11, 1, 5, 0),  # 01:00 EDT
        utc(2026, 11, 1, 5, 20),
        utc(2026, 11, 1, 5, 40),
        # 01:00-01:40 EST (06:00-06:40 UTC) are the same local times again: not run
        utc(2026, 11, 2, 6, 0),  # 01:00 EST next day
    ]
    second_pass = utc(2026, 11, 1, 6, 10)  # 01:10 EST
    assert every_20.latest_at_or_before(second_pass) == utc(2026, 11, 1, 5, 40)
    assert every_20.next_after(second_pass) == utc(2026, 11, 2, 6, 0)


def test_new_york_the_skipped_hour() -> None:
    at_0230 = Recurrence(cron="30 2 * * *", time_zone=NEW_YORK)
    assert at_0230.fire_times(utc(2026, 3, 7), 2) == [utc(2026, 3, 7, 7, 30), utc(2026, 3, 9, 6, 30)]
    every_15 = Recurrence(cron="*/15 * * * *", time_zone=NEW_YORK)
    # 01:45 EST is 06:45 UTC; the next quarter on the clock is 03:00 EDT, 07:00 UTC
    assert every_15.next_after(utc(2026, 3, 8, 6, 45)) == utc(2026, 3, 8, 7, 0)
    assert every_15.latest_at_or_before(utc(2026, 3, 8, 6, 59)) == utc(2026, 3, 8, 6, 45)


def test_a_per_second_cron_crosses_the_skipped_hour() -> None:
    every_second = Recurrence(cron="* * * * * *", time_zone=BERLIN)
    before = utc(2026, 3, 29, 0, 59, 59)  # 01:59:59 CET
    assert every_second.next_after(before) == utc(2026, 3, 29, 1, 0, 0)  # 03:00:00 CEST


def test_interval_schedules_run_from_do_not_run_until_or_one_interval_after_creation() -> None:
    hourly = spec(schedule={"recurrenceInterval": "PT1H"}).recurrence
    assert hourly.fire_times(CREATED, 2) == [CREATED + timedelta(hours=1), CREATED + timedelta(hours=2)]
    start = "2026-01-10T08:15:00Z"
    later = spec(schedule={"recurrenceInterval": "PT30M"}, doNotRunUntil=start).recurrence
    assert later.fire_times(CREATED, 2) == [utc(2026, 1, 10, 8, 15), utc(2026, 1, 10, 8, 45)]
    assert later.latest_at_or_before(utc(2026, 1, 10, 9, 0)) == utc(2026, 1, 10, 8, 45)
    assert later.latest_at_or_before(utc(2026, 1, 10, 8, 0)) is None


def test_interval_schedules_ignore_daylight_saving() -> None:
    daily = spec(schedule={"recurrenceInterval": "P1D", "timeZone": BERLIN}).recurrence
    runs = daily.fire_times(utc(2026, 3, 27, 12), 4)
    assert all(later - earlier == timedelta(days=1) for earlier, later in itertools.pairwise(runs))


def test_nothing_fires_outside_the_window() -> None:
    window = spec(doNotRunUntil="2026-01-10T00:00:00Z", doNotRunAfter="2026-01-12T03:00:00Z").recurrence
    assert window.fire_times(CREATED, 5) == [utc(2026, 1, 10, 2), utc(2026, 1, 11, 2), utc(2026, 1, 12, 2)]
    assert window.latest_at_or_before(utc(2026, 2, 1)) == utc(2026, 1, 12, 2)
    assert window.latest_at_or_before(utc(2026, 1, 9, 12)) is None


# -- the wake-up plan ------------------------------------------------------------------------------------------

EVERY_MINUTE = Recurrence(cron="* * * * *")


def plan(now: datetime, cursor: datetime, **options: Any) -> Any:
    settings = {"suspended": False, "catch_up": CatchUp.SKIP, "starting_deadline_seconds": None, **options}
    return plan_wake(EVERY_MINUTE, cursor, now, **settings)


def test_a_tick_on_time_runs_and_the_next_fire_time_follows() -> None:
    woke = plan(utc(2026, 1, 5, 9, 1, 2), cursor=utc(2026, 1, 5, 9, 0, 1))
    assert (woke.run, woke.missed, woke.skipped) == (utc(2026, 1, 5, 9, 1), 0, None)
    assert woke.cursor == utc(2026, 1, 5, 9, 1, 2) and woke.next_fire == utc(2026, 1, 5, 9, 2)


def test_an_early_wake_runs_nothing_and_keeps_the_plan() -> None:
    woke = plan(utc(2026, 1, 5, 9, 0, 30), cursor=utc(2026, 1, 5, 9, 0, 1))
    assert (woke.run, woke.skipped, woke.missed) == (None, None, 0)
    assert woke.next_fire == utc(2026, 1, 5, 9, 1)


def test_a_tick_already_considered_never_runs_again() -> None:
    # The cursor is at the tick itself: a replayed or repeated wake-up for it finds nothing due.
    assert plan(utc(2026, 1, 5, 9, 1, 0), cursor=utc(2026, 1, 5, 9, 1, 0)).run is None


def test_missed_ticks_are_counted_and_only_the_latest_is_considered() -> None:
    now = utc(2026, 1, 5, 9, 10, 20)  # 20 s after the 09:10 tick; 09:01-09:09 were missed
    woke = plan(now, cursor=utc(2026, 1, 5, 9, 0, 5))
    assert (woke.run, woke.missed) == (utc(2026, 1, 5, 9, 10), 9)


def test_a_late_tick_runs_only_with_catch_up_latest() -> None:
    every_ten = Recurrence(cron="*/10 * * * *")
    now = utc(2026, 1, 5, 9, 10) + timedelta(seconds=ON_TIME_SECONDS + 1)
    options: dict[str, Any] = {"suspended": False, "starting_deadline_seconds": None}
    skipped = plan_wake(every_ten, utc(2026, 1, 5, 8, 30, 5), now, catch_up=CatchUp.SKIP, **options)
    assert skipped.run is None and skipped.skipped == utc(2026, 1, 5, 9, 10) and skipped.missed == 3
    assert "61 s late" in str(skipped.skip_reason) and "catchUp is 'skip'" in str(skipped.skip_reason)
    caught_up = plan_wake(every_ten, utc(2026, 1, 5, 8, 30, 5), now, catch_up=CatchUp.LATEST, **options)
    assert caught_up.run == utc(2026, 1, 5, 9, 10) and caught_up.missed == 3
    assert caught_up.cursor == now and caught_up.next_fire == utc(2026, 1, 5, 9, 20)


def test_the_starting_deadline_bounds_every_run_even_on_time_ones() -> None:
    now = utc(2026, 1, 5, 9, 1, 40)
    late = plan(now, cursor=utc(2026, 1, 5, 9, 0, 30), catch_up=CatchUp.LATEST, starting_deadline_seconds=30)
    assert late.run is None and late.skip_reason == "40 s late, past startingDeadlineSeconds=30"
    within = plan(now, cursor=utc(2026, 1, 5, 9, 0, 30), catch_up=CatchUp.LATEST, starting_deadline_seconds=45)
    assert within.run == utc(2026, 1, 5, 9, 1)


def test_a_long_outage_counts_missed_ticks_up_to_a_bound() -> None:
    woke = plan(utc(2026, 1, 8, 9, 0, 3), cursor=utc(2026, 1, 5, 9, 0, 5), catch_up=CatchUp.LATEST)
    assert woke.run == utc(2026, 1, 8, 9, 0) and woke.missed == MISSED_COUNTED_AT_MOST


def test_a_suspended_schedule_runs_nothing_and_resuming_does_not_catch_up() -> None:
    cursor = utc(2026, 1, 5, 9, 0, 5)
    asleep = plan(utc(2026, 1, 5, 9, 5, 1), cursor=cursor, suspended=True, catch_up=CatchUp.LATEST)
    assert asleep.run is None and asleep.skip_reason == "the schedule is suspended" and asleep.missed == 0
    resumed = plan(utc(2026, 1, 5, 9, 5, 30), cursor=asleep.cursor, catch_up=CatchUp.LATEST)
    assert resumed.run is None and resumed.next_fire == utc(2026, 1, 5, 9, 6)


def test_a_schedule_past_do_not_run_after_has_no_next_fire() -> None:
    ended = Recurrence(cron="* * * * *", not_after=utc(2026, 1, 5, 9, 2))
    woke = plan_wake(
        ended, utc(2026, 1, 5, 9, 1, 1), utc(2026, 1, 5, 9, 2, 1),
        suspended=False, catch_up=CatchUp.SKIP, starting_deadline_seconds=None,
    )  # fmt: skip
    assert woke.run == utc(2026, 1, 5, 9, 2) and woke.next_fire is None


def test_wake_plans_across_the_berlin_autumn_change_run_each_local_hour_once() -> None:
    hourly = Recurrence(cron="0 * * * *", time_zone=BERLIN)
    cursor, runs = utc(2026, 10, 24, 22, 0, 1), []
    options: dict[str, Any] = {"suspended": False, "catch_up": CatchUp.SKIP, "starting_deadline_seconds": None}
    for _ in range(6):
        planned = plan_wake(hourly, cursor, cursor, **options).next_fire
        assert planned is not None
        woke = plan_wake(hourly, cursor, planned + timedelta(seconds=2), **options)
        assert woke.run is not None and woke.missed == 0
        runs.append(woke.run)
        cursor = woke.cursor
    assert runs == [utc(2026, 10, 24, 23), utc(2026, 10, 25, 0), utc(2026, 10, 25, 2)] + [
        utc(2026, 10, 25, hour) for hour in (3, 4, 5)
    ]


# -- concurrency and ids -----------------------------------------------------------------------------------------


def test_concurrency_decisions() -> None:
    assert decide_concurrency(ConcurrencyPolicy.FORBID, []).submit
    allow = decide_concurrency(ConcurrencyPolicy.ALLOW, ["a"])
    assert allow.submit and allow.cancel == ()
    forbid = decide_concurrency(ConcurrencyPolicy.FORBID, ["s.20260105T090000Z"])
    assert not forbid.submit and "job s.20260105T090000Z of this schedule is still running" in str(forbid.reason)
    replace = decide_concurrency(ConcurrencyPolicy.REPLACE, ["a", "b"])
    assert replace.submit and replace.cancel == ("a", "b")


def test_tick_job_ids_are_valid_job_ids_and_distinct_per_kind() -> None:
    longest = "s" * 39
    scheduled = tick_job_id(longest, utc(2026, 12, 6, 2))
    manual = tick_job_id(longest, utc(2026, 12, 6, 2), RunKind.MANUAL)
    assert scheduled == f"{longest}.20261206T020000Z" and manual == f"{longest}.manual.20261206T020000Z"
    assert ID_RULE.fullmatch(scheduled) and ID_RULE.fullmatch(manual)
    assert tick_job_id("s", datetime(2026, 12, 6, 3, tzinfo=UTC).astimezone()) == "s.20261206T030000Z"


# -- the entity's state ------------------------------------------------------------------------------------------


def put(state: ScheduleState, version: str, at: str = "2026-01-05T09:00:00+00:00", **fields: Any) -> ScheduleState:
    data = {"tenant": "t", "scheduleId": "s", "definition": spec(**fields).to_dict(), "at": at, "version": version}
    changed, _ = apply_schedule_operation(state, "put", data)
    return changed


def test_put_keeps_the_history_of_a_schedule_and_starts_afresh_after_delete() -> None:
    first = put(ScheduleState(), "v1", suspend=True)
    assert first.exists and first.suspended and first.created_at == "2026-01-05T09:00:00+00:00"
    first.counts["submitted"] = 3
    changed = put(first, "v2", at="2026-01-06T00:00:00+00:00")
    assert not changed.suspended and changed.counts["submitted"] == 3 and changed.version == "v2"
    assert changed.created_at == "2026-01-05T09:00:00+00:00" and changed.updated_at == "2026-01-06T00:00:00+00:00"
    deleted, _ = apply_schedule_operation(changed, "delete", {"version": "v3"})
    assert not deleted.exists and deleted.version == "v3"
    untouched, _ = apply_schedule_operation(deleted, "suspend", {"at": "x", "version": "v4"})
    assert untouched.version == "v3"  # a deleted schedule cannot be suspended, resumed or triggered
    again = put(deleted, "v5", at="2026-02-01T00:00:00+00:00")
    assert again.counts["submitted"] == 0 and again.created_at == "2026-02-01T00:00:00+00:00"


def test_triggers_are_kept_once_each_and_bounded() -> None:
    state = put(ScheduleState(), "v1")
    for second in [*range(MAX_PENDING_TRIGGERS + 3), 0]:
        state, _ = apply_schedule_operation(state, "trigger", {"at": f"2026-01-05T09:00:{second:02d}Z", "version": "v"})
    assert len(state.triggers) == MAX_PENDING_TRIGGERS and state.triggers[0] == "2026-01-05T09:00:00Z"


def test_a_wake_up_is_recorded_with_its_runs_skips_and_missed_ticks() -> None:
    state = put(ScheduleState(), "v1")
    state.triggers = ["2026-01-05T09:00:01Z", "2026-01-05T09:00:02Z"]
    ran = {"scheduledFor": "2026-01-05T09:00:01Z", "kind": "manual", "jobId": "s.manual.x", "submitted": True}
    reason = "concurrencyPolicy is Forbid and job s.manual.x of this schedule is still running"
    refused = {"scheduledFor": "2026-01-05T09:01:00Z", "kind": "scheduled", "jobId": "s.y", "submitted": False}
    refused["reason"] = reason
    state = record_wake(state, {"runs": [ran, refused], "missed": 4, "triggersDone": ["2026-01-05T09:00:01Z"]})
    assert state.triggers == ["2026-01-05T09:00:02Z"]
    assert state.counts == {"submitted": 1, "skipped": 1, "missed": 4}
    assert state.last_run == ran and state.last_skip == refused and state.recent_jobs == ["s.manual.x"]
    assert ScheduleState.from_dict(state.to_dict()) == state


def test_the_stored_definition_size_is_measured_as_durable_messages_carry_it() -> None:
    small = spec()
    assert definition_size(small) == len(json.dumps(small.to_dict(), separators=(",", ":")).encode())
    many = spec(jobSpecification={"image": JOB["image"], "tasks": [{"id": f"t{n:05d}", "env": {"X": "y" * 80}}
                                                                   for n in range(10_000)]})  # fmt: skip
    assert definition_size(many) > MAX_DEFINITION_BYTES
