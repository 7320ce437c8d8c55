"""When a task orchestration continues as new, and what it carries into the next generation.

Histories stay bounded: every WAITS_PER_GENERATION waits the orchestration continues as new with a
`TaskCheckpoint` (`acibatch.checkpoint`), unless an event it must read may be waiting (events raised into an
ending generation may not reach the next one).
"""

from __future__ import annotations

from acibatch.checkpoint import WAITS_PER_GENERATION, Phase, TaskCheckpoint, TaskStart
from orchestrators.task_run import TaskRun, iso


class ContinueAsNew(Exception):
    """Unwinds to `task.run_task`, which continues the orchestration as new from `start`."""

    def __init__(self, start: TaskStart) -> None:
        super().__init__("continue as new")
        self.start = start


def maybe_continue(run: TaskRun, phase: Phase) -> None:
    """Count a wait; after WAITS_PER_GENERATION of them continue as new, unless an event is waiting to be read
    (it is handled first, here: events raised into an ending generation may not reach the next one)."""
    run.waits_here += 1
    if run.waits_here < WAITS_PER_GENERATION:
        return
    if run.cancelled or run.cancel_waiter.is_completed or event_may_be_kept(run, phase):
        return
    raise ContinueAsNew(TaskStart(run.task, resume=checkpoint(run, phase)))


def event_may_be_kept(run: TaskRun, phase: Phase) -> bool:
    """Whether an event this phase reads may be waiting unread: in an open waiter that fired, or kept by the
    SDK for the next waiter of its name (a muted name, or callbacks not raced since the group was created).
    Only the phase's own events count: a wake-up while a group runs or a callback while queued is stale (the
    lease is held; the attempt ended), and the next generation asks for the lease again."""
    if phase is Phase.QUEUED:
        return bool(run.grants.arrived()) or run.grants.muted
    if phase is Phase.WATCH:
        return bool(run.callbacks.arrived()) or run.callbacks.muted or not run.callbacks.raced
    return False  # CREATE: the group does not exist yet, so nothing of this attempt calls back


def checkpoint(run: TaskRun, phase: Phase) -> TaskCheckpoint:
    return TaskCheckpoint(
        phase=phase,
        record=run.record,
        attempt=run.attempt,
        priority=run.priority,
        attempt_state=run.state if phase is not Phase.QUEUED else None,
        create_at=run.create_at,
        deadline=None if run.deadline is None else iso(run.deadline),
        upload_deadline=None if run.upload_deadline is None else iso(run.upload_deadline),
        heard_from=run.heard_from,
        handled=tuple(run.callbacks.handled),
        capacity_waits=run.capacity_waits,
        generation=run.generation + 1,
        user_report=None if run.user_report is None else run.user_report.to_dict(),
        callback_events=run.callback_events,
    )
