"""Schedule orchestrator: one eternal instance per schedule (`schedule:<tenant>:<scheduleId>`).

Each execution is one wake-up: read the definition from the schedule entity, plan with the pure
`acibatch.schedules.plan_wake` (from its input's cursor and the replay-safe `current_utc_datetime`), submit the
due tick and any manual runs through the `run_scheduled_job` activity, record what happened in the entity, then
sleep until the next fire time (at most MAX_SLEEP) or a `ScheduleChanged` event, and `continue_as_new` with the
moved cursor. So a change, suspension or deletion takes effect at the next wake-up, and the history never holds
more than one wake-up: at most HISTORY_EVENTS_AT_MOST events, however many ticks the schedule has run.

The cursor is the last instant a wake-up considered: a tick at or before it is never planned again, and its job
id is derived from the tick's instant, so replaying or repeating a wake-up cannot submit a tick twice.

Timers: Azure Storage takes durable timers of at most 6 days; the extension tells the SDK so
(`maximumShortTimerDuration`) and the Python SDK (1.2+) then splits a longer timer into 3-day legs
(`LongTimerTask`). MAX_SLEEP (1 day) stays below that limit on every backend, so each sleep is one timer and
the schedule re-reads its definition at least daily even when it has nothing to run.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import azure.durable_functions as df

from acibatch import durable_names as names
from acibatch.messages.schedule import RunOutcome, RunRequest, ScheduleInput, SkippedTick, WakeRecord
from acibatch.schedules import MAX_PENDING_TRIGGERS, RunKind, ScheduleState, parse_instant, plan_wake, utc_iso
from orchestrators import bp, calls
from orchestrators.calls import Steps

MAX_SLEEP = timedelta(days=1)
SUBMIT_RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=5_000, max_number_of_attempts=3)
# One wake-up's history, in events: 16 for the start, the entity read, the record call, the timer and wake and
# the continue-as-new (with the episodes around them); per run 4 (the activity scheduled and completed, one
# episode), plus 6 per retry (failure, retry timer created and fired, two episodes). Runs are the tick and at
# most MAX_PENDING_TRIGGERS manual ones.
HISTORY_EVENTS_AT_MOST = 16 + (1 + MAX_PENDING_TRIGGERS) * (4 + 6 * (3 - 1))


@bp.orchestration_trigger(context_name="context", orchestration=names.SCHEDULE_ORCHESTRATOR)
def schedule_orchestrator(context: df.DurableOrchestrationContext) -> Steps[dict[str, Any] | None]:
    data = ScheduleInput.parse(context.get_input())
    tenant, schedule_id = data.tenant, data.schedule_id
    state = ScheduleState.from_dict((yield calls.read_schedule(context, tenant, schedule_id)))
    if not state.exists:
        return {"ended": "the schedule was deleted"}
    spec = state.spec()
    now = context.current_utc_datetime
    plan = plan_wake(
        spec.recurrence,
        parse_instant(data.cursor),
        now,
        suspended=state.suspended,
        catch_up=spec.catch_up,
        starting_deadline_seconds=spec.starting_deadline_seconds,
    )
    # Manual runs first (they were asked for before this tick came due), then the tick.
    runs = [(at, RunKind.MANUAL) for at in state.triggers]
    if plan.run is not None:
        runs.append((utc_iso(plan.run), RunKind.SCHEDULED))
    recent: tuple[str, ...] = tuple(state.recent_jobs)
    outcomes: list[RunOutcome] = []
    for at, kind in runs:
        run = RunRequest(
            tenant,
            schedule_id,
            at,
            kind,
            spec.concurrency_policy,
            spec.to_dict()["job"],
            state.sealed_secure_env,
            recent,
        )
        try:
            result = yield calls.run_scheduled_job(context, SUBMIT_RETRY, run)
        except Exception as exc:  # the schedule outlives a tick it could not submit: say so and go on
            reason = f"submitting the job failed {SUBMIT_RETRY.max_number_of_attempts} times: {exc}"[:500]
            outcome = RunOutcome(at, kind, None, submitted=False, reason=reason)
        else:
            outcome = RunOutcome.parse(result)
        outcomes.append(outcome)
        if outcome.submitted and outcome.job_id is not None:
            recent = (*recent, outcome.job_id)
    skipped = None
    if plan.skipped is not None and not state.suspended:
        skipped = SkippedTick(utc_iso(plan.skipped), plan.skip_reason)
    if outcomes or skipped or plan.missed:
        record = WakeRecord(outcomes, skipped, plan.missed, state.triggers)
        yield calls.record_wake(context, tenant, schedule_id, record)

    wake_at = now + MAX_SLEEP
    if plan.next_fire is not None and not state.suspended:
        wake_at = min(wake_at, plan.next_fire)
    context.set_custom_status(
        {"nextRunAt": None if state.suspended or plan.next_fire is None else utc_iso(plan.next_fire)}
    )
    timer = context.create_timer(wake_at)
    changed = context.wait_for_external_event(names.EVENT_SCHEDULE_CHANGED)
    winner = yield context.task_any([timer, changed])
    if winner is changed and not timer.is_completed:
        timer.cancel()
    context.continue_as_new(ScheduleInput(tenant, schedule_id, plan.cursor.isoformat()).to_dict())
    return None
