"""What a schedule does at each wake-up (`plan_wake`), about its running jobs (`decide_concurrency`), and the job id
of each tick (`tick_job_id`). Pure: no clock, so the schedule orchestrator can call them during replay.

- The candidates are the fire times after the cursor (the last instant a wake-up considered) up to now. The latest
  is the due tick; every earlier one is missed: counted, never run, so a schedule that could not run for a while
  never starts a backlog (the Kubernetes CronJob lesson).
- The due tick runs when it is at most ON_TIME_SECONDS late (a durable timer on an idle Azure app fires up to one
  30 s queue poll late). A later one is a catch-up: `catchUp: latest` runs it, `skip` does not. Either way it is
  skipped once it is more than `startingDeadlineSeconds` late (when set).
- A suspended schedule runs nothing and its cursor moves on, so resuming never catches up on suspended time.

Concurrency, from the jobs of this schedule still running: `Allow` submits anyway, `Forbid` skips the tick and says
which job is running (Azure Batch's one active job per schedule), `Replace` cancels them and submits the new job.

Each tick's job id is derived from the schedule id and the scheduled instant, so a repeated or replayed tick can
only resubmit the same job, which job submission answers idempotently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from acibatch.scheduling.recurrence import Recurrence

ON_TIME_SECONDS = 60
MISSED_COUNTED_AT_MOST = 100  # beyond this a wake-up reports "at least 100" instead of walking every tick
STAMP = "%Y%m%dT%H%M%SZ"


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
