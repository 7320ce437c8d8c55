"""One task orchestration's working state (`TaskRun`) and what every phase of it uses: publishing the record,
reporting the task's state to its job and tenant, and waiting (a race of an event, a cancel and a timer).

The phases themselves are functions over a `TaskRun` in their own modules: `task_admission` (the capacity
lease), `task_attempt` (create and watch a container group), `task_cleanup` (stop, delete, release) and
`task_generations` (continue as new); `task` ties them into the task's life.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import azure.durable_functions as df

from acibatch import durable_names as names
from acibatch.callbacks import CallbackReport
from acibatch.checkpoint import Phase, TaskStart, attempt_state
from acibatch.messages.progress import TaskStateReport
from acibatch.messages.tenant import TaskFinished
from acibatch.policy import AttemptState
from acibatch.records import TaskRecord, TaskState
from orchestrators import calls
from orchestrators.calls import Steps
from orchestrators.task_events import Events, callback_event

ERROR_TEXT_MAX = 500


class Woken(StrEnum):
    """What ended a `TaskRun.race`."""

    EVENT = "event"
    CANCEL = "cancel"
    TIMER = "timer"


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def failure_text(exc: BaseException) -> str:
    return str(exc).strip()[:ERROR_TEXT_MAX] or type(exc).__name__


class TaskRun:
    def __init__(self, context: df.DurableOrchestrationContext, start: TaskStart) -> None:
        self.context = context
        self.task = task = start.task
        resume = start.resume
        self.resumed = resume
        self.record = resume.record if resume else TaskRecord(id=task.task_id)
        self.attempt = resume.attempt if resume else 1
        self.priority = resume.priority if resume else task.priority
        self.state: AttemptState = (resume and resume.attempt_state) or attempt_state(task, 1, self.priority)
        self.create_at = resume.create_at if resume else 0.0
        self.deadline = parse_iso(resume.deadline) if resume and resume.deadline else None
        # A task run with the acibatch agent, once its command has ended: when its uploads time out (`task_agent`).
        uploads = resume.upload_deadline if resume else None
        self.upload_deadline = parse_iso(uploads) if uploads else None
        self.heard_from = resume.heard_from if resume else 0  # the last attempt that reported through a callback
        self.capacity_waits = resume.capacity_waits if resume else 0
        self.generation = resume.generation if resume else 1
        self.waits_here = 0  # waits in this generation (see `task_generations.maybe_continue`)
        self.handovers: list[dict[str, Any]] = []  # leases this generation's releases handed on (`TaskStart`)
        self.cancel_waiter = context.wait_for_external_event(names.EVENT_CANCEL)
        self.cancelled = False
        self.callback_events = start.callback_events  # recorded in the input: replays keep their event names
        handled = resume.handled if resume else ()
        self.callbacks = Events(context, callback_event(self.callback_events, self.attempt), handled)
        # A task run with the acibatch agent: the task's own terminal report of this attempt, kept until the
        # agent's report (or its result.json) ends the attempt (`task_agent`).
        kept = resume.user_report if resume else None
        self.user_report: CallbackReport | None = None if kept is None else CallbackReport.from_event(kept)
        self.grants = Events(context, names.EVENT_CAPACITY_GRANTED)
        # The group the current attempt may have created (cleaned up on every path, also in a resumed generation).
        self.group: str | None = resume.record.group_name if resume and resume.phase is not Phase.QUEUED else None

    @property
    def now(self) -> datetime:
        now: datetime = self.context.current_utc_datetime
        return now

    @property
    def lease_id(self) -> str:
        return f"{self.context.instance_id}#{self.attempt}"

    def publish(self, **changes: Any) -> None:
        self.record = self.record.model_copy(update=changes)
        self.context.set_custom_status(self.record.live_status())

    def report_state(self, state: TaskState) -> None:
        calls.report_task_state(self.context, self.task.progress_key, TaskStateReport(self.task.task_id, state))

    def finish(self, state: TaskState, error: str | None = None) -> TaskRecord:
        # A task that succeeded after a failed attempt or create keeps that error: it says why attempts > 1.
        error = error if error is not None else self.record.error
        self.publish(state=state, finished_at=iso(self.now), error=error, pending_reason=None)
        self.report_state(state)
        calls.task_finished(self.context, self.task.tenant, TaskFinished(state))
        return self.record

    def race(self, events: Events, seconds: float) -> Steps[tuple[Woken, Any]]:
        """Wait for an event of `events`, a cancel or a timer of `seconds`, whichever comes first.

        Returns `(woken, payload)`: payload is the event's (None for a repeat of one handled already, see
        `Events`); on a cancel the task is marked cancelled. The timer is cancelled unless it won.
        """
        timer = self.context.create_timer(self.now + timedelta(seconds=seconds))
        winner = yield self.context.task_any([*events.waiters(), self.cancel_waiter, timer])
        if winner is timer:
            events.listen_again()
            return Woken.TIMER, None
        timer.cancel()
        if winner is self.cancel_waiter:
            self.cancelled = True
            return Woken.CANCEL, None
        return Woken.EVENT, events.take(winner)

    def sleep(self, seconds: float) -> Steps[bool]:
        """A durable pause that ends early on cancel; returns True when cancelled."""
        timer = self.context.create_timer(self.now + timedelta(seconds=seconds))
        winner = yield self.context.task_any([timer, self.cancel_waiter])
        if winner is self.cancel_waiter:
            timer.cancel()
            self.cancelled = True
        return self.cancelled
