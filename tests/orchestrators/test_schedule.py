"""The schedule orchestrator through the real Durable SDK: one wake-up per execution, a tick submitted with its
derived id, manual runs, a change waking it early, suspension, deletion, a submit that keeps failing, and a
history that stays bounded over many ticks (each tick a new execution, as `continue_as_new` makes it)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.durable_functions.models.actions.ActionType import ActionType

from acibatch import durable_names as names
from acibatch.schedules import (
    ScheduleState,
    apply_schedule_operation,
    parse_schedule_spec,
    schedule_input,
    schedule_instance_id,
    tick_job_id,
)
from orchestrators.schedule import HISTORY_EVENTS_AT_MOST, MAX_SLEEP, SUBMIT_RETRY
from tests.orchestrators.actions import Episode, Scheduled, activity_with_retry, call_entity, timer, wait_for
from tests.orchestrators.harness import Orchestration

# The 1,000-tick run (`long`) plays five episodes per tick through the SDK.
pytestmark = pytest.mark.timeout(180)

TENANT, SCHEDULE = "team-a", "nightly"
ENTITY = names.SCHEDULE_ENTITY
CREATED = datetime(2026, 1, 5, 8, 59, 50, tzinfo=UTC)
EVERY_TEN_SECONDS = "*/10 * * * * *"


class Execution(Orchestration):
    """One execution of the schedule orchestration; `continue_as_new` ends it with the next one's input."""

    def _schedule(self, action: dict[str, Any]) -> tuple[Scheduled, list[dict[str, Any]]]:
        if ActionType(action["actionType"]) is ActionType.CONTINUE_AS_NEW:
            return Scheduled(None, ActionType.CONTINUE_AS_NEW, action), []  # the host starts a new execution
        return super()._schedule(action)


def defined(cron: str = EVERY_TEN_SECONDS, **fields: Any) -> ScheduleState:
    body = {"schedule": {"cron": cron}, "jobSpecification": {"image": "registry.example.com/w:1", "taskCount": 1}}
    spec = parse_schedule_spec({**body, **fields}, created_at=CREATED)
    put = {"tenant": TENANT, "scheduleId": SCHEDULE, "definition": spec.to_dict(), "at": CREATED.isoformat()}
    state, _ = apply_schedule_operation(ScheduleState(), "put", {**put, "version": "v1"})
    return state


def start(cursor: datetime, now: datetime) -> Execution:
    return Execution(
        names.SCHEDULE_ORCHESTRATOR,
        schedule_input(TENANT, SCHEDULE, cursor.isoformat()),
        schedule_instance_id(TENANT, SCHEDULE),
        start=now,
    )


def continued_input(episode: Episode) -> dict[str, Any]:
    """The input the execution continued as new with."""
    (action,) = [a for a in episode.actions if ActionType(a["actionType"]) is ActionType.CONTINUE_AS_NEW]
    data: dict[str, Any] = json.loads(action["input"])
    return data


def read_definition(h: Execution, state: ScheduleState) -> Episode:
    assert h.run().keys == [call_entity(ENTITY, "get")]
    h.entity_answered(ENTITY, "get", state.to_dict())
    return h.run()


def submitted(run: dict[str, Any]) -> dict[str, Any]:
    """What the activity answers for a job it started."""
    kind = run["kind"]
    job_id = tick_job_id(run["scheduleId"], datetime.fromisoformat(run["scheduledFor"]), kind)
    return {"scheduledFor": run["scheduledFor"], "kind": kind, "jobId": job_id, "submitted": True}


def sleep_keys(episode: Episode, wake_at: datetime) -> None:
    assert episode.keys == [timer(wake_at), wait_for(names.EVENT_SCHEDULE_CHANGED)]


def tick(h: Execution, state: ScheduleState) -> tuple[Episode, dict[str, Any]]:
    """An execution woken for a due tick: it submits it, records it, and goes back to sleep."""
    episode = read_definition(h, state)
    assert episode.keys == [activity_with_retry(names.RUN_SCHEDULED_JOB)]
    run = episode.new[0].input
    h.activity_completed(names.RUN_SCHEDULED_JOB, submitted(run))
    episode = h.run()
    assert episode.keys == [call_entity(ENTITY, "record")]
    record = episode.new[0].input
    h.entity_answered(ENTITY, "record", None)
    return h.run(), record


def test_the_first_wake_plans_the_first_tick_and_runs_nothing() -> None:
    h = start(cursor=CREATED, now=CREATED + timedelta(seconds=1))
    episode = read_definition(h, defined())
    sleep_keys(episode, datetime(2026, 1, 5, 9, 0, 0, tzinfo=UTC))
    assert episode.custom_status == {"nextRunAt": "2026-01-05T09:00:00Z"}
    h.timer_fired()
    done = h.run()
    assert continued_input(done) == schedule_input(TENANT, SCHEDULE, continued_input(done)["cursor"])


def test_a_due_tick_is_submitted_with_its_derived_id_and_recorded() -> None:
    due = datetime(2026, 1, 5, 9, 0, 0, tzinfo=UTC)
    h = start(cursor=CREATED, now=due + timedelta(seconds=2))
    episode = read_definition(h, defined(concurrencyPolicy="Forbid"))
    assert episode.keys == [activity_with_retry(names.RUN_SCHEDULED_JOB)]
    run = episode.new[0].input
    assert run["scheduledFor"] == "2026-01-05T09:00:00Z" and run["kind"] == "scheduled"
    assert run["policy"] == "Forbid" and run["recentJobs"] == [] and run["job"]["secureEnv"] == {}
    h.activity_completed(names.RUN_SCHEDULED_JOB, submitted(run))
    episode = h.run()
    record = episode.new[0].input
    assert record["runs"][0]["jobId"] == "nightly.20260105T090000Z" and record["missed"] == 0
    h.entity_answered(ENTITY, "record", None)
    sleep_keys(h.run(), datetime(2026, 1, 5, 9, 0, 10, tzinfo=UTC))
    h.timer_fired()
    cursor = datetime.fromisoformat(continued_input(h.run())["cursor"])
    assert cursor >= due  # the tick is behind the cursor: no later wake-up plans it again


def test_manual_runs_go_first_and_are_handed_back_as_done() -> None:
    state = defined(cron="0 2 * * *")
    state, _ = apply_schedule_operation(state, "trigger", {"at": "2026-01-05T09:00:01Z", "version": "v2"})
    h = start(cursor=CREATED, now=datetime(2026, 1, 5, 9, 0, 2, tzinfo=UTC))
    episode = read_definition(h, state)
    run = episode.new[0].input
    assert (run["kind"], run["scheduledFor"]) == ("manual", "2026-01-05T09:00:01Z")
    h.activity_completed(names.RUN_SCHEDULED_JOB, submitted(run))
    record = h.run().new[0].input
    assert record["triggersDone"] == ["2026-01-05T09:00:01Z"]
    assert record["runs"][0]["jobId"] == "nightly.manual.20260105T090001Z"
    after, _ = apply_schedule_operation(state, "record", record)
    assert after.triggers == [] and after.recent_jobs == ["nightly.manual.20260105T090001Z"]


def test_a_change_wakes_it_early_and_the_next_execution_replans() -> None:
    h = start(cursor=CREATED, now=CREATED + timedelta(seconds=1))
    sleep_keys(read_definition(h, defined(cron="0 2 * * *")), datetime(2026, 1, 6, 2, 0, tzinfo=UTC))
    h.event(names.EVENT_SCHEDULE_CHANGED, {"at": "2026-01-05T09:00:30Z"})
    episode = h.run()
    # The cursor is where the wake-up planned (the clock of its second episode, after reading the entity).
    assert [scheduled.type for scheduled in episode.new] == [ActionType.CONTINUE_AS_NEW]
    assert continued_input(episode)["cursor"] == (CREATED + timedelta(seconds=2)).isoformat()
    assert next(a for a in episode.actions if a["actionType"] == ActionType.CREATE_TIMER)["isCanceled"]


def test_a_suspended_schedule_sleeps_a_day_or_until_changed() -> None:
    state = defined()
    state, _ = apply_schedule_operation(state, "suspend", {"at": "x", "version": "v2"})
    now = datetime(2026, 1, 5, 9, 0, 31, tzinfo=UTC)
    h = start(cursor=CREATED, now=now)
    episode = read_definition(h, state)
    # No activity: ticks while suspended do not run. The sleep starts from the second episode's clock.
    sleep_keys(episode, now + timedelta(seconds=1) + MAX_SLEEP)
    assert episode.custom_status == {"nextRunAt": None}


def test_a_deleted_schedule_ends_its_orchestration() -> None:
    deleted, _ = apply_schedule_operation(defined(), "delete", {"version": "v2"})
    h = start(cursor=CREATED, now=CREATED)
    assert h.run().keys == [call_entity(ENTITY, "get")]
    h.entity_answered(ENTITY, "get", deleted.to_dict())
    episode = h.run()
    assert episode.is_done and episode.output == {"ended": "the schedule was deleted"}


def test_a_tick_whose_submission_keeps_failing_is_recorded_as_skipped_and_the_schedule_goes_on() -> None:
    h = start(cursor=CREATED, now=datetime(2026, 1, 5, 9, 0, 1, tzinfo=UTC))
    read_definition(h, defined())
    for attempt in range(SUBMIT_RETRY.max_number_of_attempts):
        h.activity_failed(names.RUN_SCHEDULED_JOB, "the task hub is unreachable")
        h.run()
        if attempt < SUBMIT_RETRY.max_number_of_attempts - 1:
            h.timer_fired()
            h.run()
        else:
            h.timer_fired()  # DTFx's last, due-now timer before the failure reaches the orchestrator
            episode = h.run()
    assert episode.keys == [call_entity(ENTITY, "record")]
    (run,) = episode.new[0].input["runs"]
    assert run["submitted"] is False and "failed 3 times" in run["reason"] and "unreachable" in run["reason"]


# Every tick is a fresh execution from the same kind of input, so 100 show the bound (the recent-jobs list fills
# after 20); the 1,000-tick run is in `make test-all`. Each tick replays the cron, which costs most of the time.
@pytest.mark.parametrize("ticks", [100, pytest.param(1000, marks=pytest.mark.long)])
def test_history_stays_bounded_over_many_ticks(ticks: int) -> None:
    state = defined()
    cursor, now = CREATED, datetime(2026, 1, 5, 9, 0, 0, 500_000, tzinfo=UTC)
    jobs, longest, inputs = [], 0, set()
    for _ in range(ticks):
        h = start(cursor, now)
        _, record = tick(h, state)
        jobs.append(record["runs"][0]["jobId"])
        state, _ = apply_schedule_operation(state, "record", record)
        fired = h.timer_fired()
        done = h.run()
        longest = max(longest, len(h.history))
        following = continued_input(done)
        inputs.add(len(json.dumps(following)))
        cursor, now = datetime.fromisoformat(following["cursor"]), fired.fire_at + timedelta(milliseconds=500)
    assert longest <= HISTORY_EVENTS_AT_MOST
    print(f"longest execution history over {ticks} ticks: {longest} events (bound {HISTORY_EVENTS_AT_MOST})")
    last = datetime(2026, 1, 5, 9, 0, tzinfo=UTC) + timedelta(seconds=10 * (ticks - 1))
    assert len(set(jobs)) == ticks and jobs[0] == "nightly.20260105T090000Z"
    assert jobs[-1] == tick_job_id(SCHEDULE, last)
    assert len(inputs) == 1  # the input does not grow either
    assert len(state.recent_jobs) == 20 and state.counts == {"submitted": ticks, "skipped": 0, "missed": 0}
    assert last <= cursor < last + timedelta(seconds=10)
