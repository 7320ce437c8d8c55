"""Task orchestrator: one task's life through attempts, each attempt one ACI container group.

Per attempt: take a capacity lease (waiting on `CapacityGranted` raced with a back-off timer; the first attempt
asks in the same round trip as registering at the job), create the group, race the signed callback against a
poll timer until the task timeout, decide with `acibatch.policy.decide`, clean the group up, release the lease
and record usage.

Waiters for external events are created once and reused across `task_any` calls: the Python SDK hands an
event to the most recently created waiter of that name, so an abandoned waiter would swallow a later event.
And an event that arrives while no waiter of its name is open is kept by the SDK and handed to *every* later
waiter of that name, never dropped (Azure/azure-functions-durable-python#507): a repeated callback (a report
sent twice) or a second wake-up would complete each new waiter at once, forever. So a payload already handled
is recognised as "nothing new" (`Events`), and the orchestrator stops listening for that name until its next
timer; a newer event replaces the kept one and is read then, and status polling stays the backstop.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import azure.durable_functions as df

from acibatch import durable_names as names
from acibatch.callbacks import CallbackReport, CallbackStatus, decode_event_payload
from acibatch.naming import container_group_name
from acibatch.observe import observation_from_state
from acibatch.plan import TaskInput
from acibatch.policy import AttemptState, Decision, GroupAction, Next, Observation, ObservationKind, decide
from acibatch.records import TaskRecord, TaskState
from orchestrators import bp

Steps = Generator[Any, Any, Any]

CAPACITY = df.EntityId(names.CAPACITY_ENTITY, names.CAPACITY_KEY)
# How long a container that has called back, then exited, is given for its final report to arrive (it sent it
# before exiting, but its event may reach the orchestration after the poll that saw the exit).
CALLBACK_GRACE_SECONDS = 5.0


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Events:
    """External events of one name: one reusable waiter, and the payloads already handled (see the docstring)."""

    def __init__(self, context: df.DurableOrchestrationContext, name: str) -> None:
        self.context = context
        self.name = name
        self.waiter: Any = None
        self.handled: set[str] = set()
        self.muted = False  # after a repeat: not listening until the caller's next timer

    def waiters(self) -> list[Any]:
        """The waiter to race (none while muted), created on first use and kept until it wins."""
        if self.muted:
            return []
        if self.waiter is None:
            self.waiter = self.context.wait_for_external_event(self.name)
        return [self.waiter]

    def take(self, winner: Any) -> Any:
        """The payload of a waiter that won, or None when it is one handled already (then mute until a timer)."""
        self.waiter = None
        key = winner.result if isinstance(winner.result, str) else json.dumps(winner.result, sort_keys=True)
        if key in self.handled:
            self.muted = True
            return None
        self.handled.add(key)
        return decode_event_payload(winner.result)

    def timer_fired(self) -> None:
        self.muted = False

    def arrived(self) -> Any:
        """The open waiter if an event completed it while the orchestrator waited on something else, else None."""
        return self.waiter if self.waiter is not None and self.waiter.is_completed else None


def _capacity_wait_seconds(waits: int) -> float:
    # Wake-ups come as CapacityGranted events (raised by an at-least-once activity); the timer only heals a
    # lost one, so it starts late and backs off: a thousand waiting tasks must not poll the capacity entity.
    return float(min(30 * 2**waits, 300))


class TaskRun:
    def __init__(self, context: df.DurableOrchestrationContext, task: TaskInput) -> None:
        self.context = context
        self.task = task
        self.progress = df.EntityId(names.PROGRESS_ENTITY, task.progress_key)
        self.tenant = df.EntityId(names.TENANT_ENTITY, task.tenant)
        self.record = TaskRecord(id=task.task_id)
        self.cancel_waiter = context.wait_for_external_event(names.EVENT_CANCEL)
        self.cancelled = False
        self.callbacks = Events(context, names.EVENT_CALLBACK)
        self.heard_from = 0  # the last attempt whose container reported through a callback
        self.grants = Events(context, names.EVENT_CAPACITY_GRANTED)

    @property
    def now(self) -> datetime:
        now: datetime = self.context.current_utc_datetime
        return now

    def publish(self, **changes: Any) -> None:
        self.record = replace(self.record, **changes)
        self.context.set_custom_status(self.record.live_status())

    def report_state(self, state: TaskState) -> None:
        self.context.signal_entity(self.progress, "set", {"taskId": self.task.task_id, "state": str(state)})

    def finish(self, state: TaskState, error: str | None = None) -> dict[str, Any]:
        self.publish(state=state, finished_at=_iso(self.now), error=error)
        self.report_state(state)
        self.context.signal_entity(self.tenant, "task_finished", {"outcome": str(state)})
        return self.record.to_dict()

    def run(self) -> Steps:
        attempt, priority = 1, self.task.priority
        lease_id = f"{self.context.instance_id}#{attempt}"
        first_request = self.lease_request(lease_id)
        # Register with the job and ask for the first lease at once: one round trip instead of two, which is
        # seconds when a thousand tasks start together. A task of a cancelled job gives the lease straight back.
        begin, first_answer = yield self.context.task_all([
            self.context.call_entity(self.progress, "begin", self.task.task_id),
            self.context.call_entity(CAPACITY, "acquire", first_request),
        ])  # fmt: skip
        if begin.get("cancelled"):
            if first_answer["status"] != "REJECTED":
                yield from self.release(lease_id)
            return self.finish(TaskState.CANCELLED, "the job was cancelled before this task started")
        while True:
            group = container_group_name(self.task.tenant, self.task.job_id, self.task.task_id, attempt)
            self.publish(state=TaskState.QUEUED, attempt=attempt, group_name=group, exit_code=None)
            if attempt > 1:
                self.report_state(TaskState.QUEUED)  # back in the queue until the next attempt gets a lease
            lease_id = f"{self.context.instance_id}#{attempt}"
            if attempt == 1:
                admitted = yield from self.acquire(lease_id, first_request, first_answer)
            else:
                admitted = yield from self.acquire(lease_id, self.lease_request(lease_id))
            if admitted is not None:
                state = TaskState.CANCELLED if self.cancelled else TaskState.FAILED
                return self.finish(state, admitted)
            self.publish(attempts=attempt)
            decision, result = yield from self.attempt(attempt, group, priority)
            yield from self.release(lease_id)
            if decision.next is Next.SUCCEED:
                self.publish(result=result)
                return self.finish(TaskState.SUCCEEDED)
            if decision.next is Next.CANCEL:
                return self.finish(TaskState.CANCELLED, decision.reason)
            if decision.next is Next.NEW_ATTEMPT:
                self.publish(error=decision.reason)
                attempt, priority = attempt + 1, decision.next_priority
                continue
            return self.finish(TaskState.FAILED, decision.reason)

    # -- admission ---------------------------------------------------------------------------------------

    def lease_request(self, lease_id: str) -> dict[str, Any]:
        return {
            "leaseId": lease_id,
            "tenant": self.task.tenant,
            "cores": self.task.cpu,
            "memoryGb": self.task.memory_gb,
            "requestedAt": self.now.timestamp(),
        }

    def acquire(self, lease_id: str, request: dict[str, Any], answer: dict[str, Any] | None = None) -> Steps:
        """Hold a capacity lease; returns None when granted, else why the task cannot run.

        `answer` is the capacity entity's answer to the `request` already sent for this lease, if any.
        """
        waits = 0
        while True:
            if self.cancelled:
                # Through `release`: if the lease was granted meanwhile, whoever gets it next is woken.
                yield from self.release(lease_id)
                return "the job was cancelled while the task was queued"
            result = answer if answer is not None else (yield self.context.call_entity(CAPACITY, "acquire", request))
            answer = None
            status = result["status"]
            if status == "GRANTED":
                return None
            if status == "REJECTED":
                return f"the task can never be scheduled: {result.get('reason')}"
            woken, granted = yield from self.race(self.grants, _capacity_wait_seconds(waits))
            # The releasing task's capacity call already granted these leases; asking again would only add a
            # round trip to the dispatch path. A stale, foreign or repeated wake-up (or the timer) asks again.
            if woken == "event" and isinstance(granted, dict) and lease_id in granted.get("leases", []):
                return None
            waits += 1

    def release(self, lease_id: str) -> Steps:
        released = yield self.context.call_entity(
            CAPACITY, "release", {"leaseId": lease_id, "now": self.now.timestamp()}
        )
        granted = [lease["leaseId"] for lease in released.get("granted", [])]
        if granted:
            yield self.context.call_activity(names.WAKE_WAITERS, granted)
        lease = released.get("released")
        if lease:
            seconds = max(0.0, self.now.timestamp() - float(lease["startedAt"]))
            self.context.signal_entity(
                self.tenant,
                "record_usage",
                {
                    "leaseId": lease_id,
                    "cores": self.task.cpu,
                    "memoryGb": self.task.memory_gb,
                    "seconds": seconds,
                },
            )

    # -- one attempt ---------------------------------------------------------------------------------------

    def race(self, events: Events, seconds: float) -> Steps:
        """Wait for an event of `events`, a cancel or a timer of `seconds`, whichever comes first.

        Returns `(woken, payload)`: woken is "event" (payload None for a repeat of one handled already, see
        `Events`), "cancel" (the task is then marked cancelled) or "timer"; the timer is cancelled otherwise.
        """
        timer = self.context.create_timer(self.now + timedelta(seconds=seconds))
        winner = yield self.context.task_any([*events.waiters(), self.cancel_waiter, timer])
        if winner is timer:
            events.timer_fired()
            return "timer", None
        timer.cancel()
        if winner is self.cancel_waiter:
            self.cancelled = True
            return "cancel", None
        return "event", events.take(winner)

    def sleep(self, seconds: float) -> Steps:
        """A durable pause that ends early on cancel; returns True when cancelled."""
        timer = self.context.create_timer(self.now + timedelta(seconds=seconds))
        winner = yield self.context.task_any([timer, self.cancel_waiter])
        if winner is self.cancel_waiter:
            timer.cancel()
            self.cancelled = True
        return self.cancelled

    def attempt(self, attempt: int, group: str, priority: str) -> Steps:
        """Run one attempt to its decision; returns `(decision, reported result)`.

        Create failures (synchronous ARM errors, or provisioning that fails later) that the policy calls
        transient re-create the same attempt after a back-off: they do not count against maxAttempts.
        """
        state = AttemptState(
            attempt=attempt,
            max_attempts=self.task.max_attempts,
            restarts_in_place=0,
            transient_errors=0,
            priority=priority,
            spot_fallback=self.task.spot_fallback,
            on_success=self.task.on_success,
            on_failure=self.task.on_failure,
        )
        create_input = {
            **self.task.to_dict(),
            "name": group,
            "attempt": attempt,
            "priority": priority,
            "owner": self.context.instance_id,
            "createdAt": int(self.now.timestamp()),
        }
        deadline: datetime | None = None
        while True:
            if self.cancelled:
                decision = decide(Observation(kind=ObservationKind.CANCELLED), state)
                return (yield from self.apply(decision, group)), None
            created = yield self.context.call_activity(names.CREATE_GROUP, create_input)
            if created["ok"]:
                if deadline is None:
                    deadline = self.now + timedelta(seconds=self.task.task_timeout_seconds)
                    self.publish(state=TaskState.RUNNING, started_at=self.record.started_at or _iso(self.now))
                    self.report_state(TaskState.RUNNING)
                decision, result = yield from self.watch(attempt, group, state, deadline)
            else:
                error = created["error"]
                observation = Observation(
                    kind=ObservationKind.CREATE_FAILED,
                    arm_status=error.get("status"),
                    arm_code=error.get("code"),
                    arm_message=error.get("message"),
                )
                decision, result = decide(observation, state), None
            if decision.next is not Next.RETRY_CREATE:
                return (yield from self.apply(decision, group)), result
            yield self.context.call_activity(names.CLEANUP_GROUP, {"name": group, "stop": False, "delete": True})
            state = replace(state, transient_errors=state.transient_errors + 1)
            yield from self.sleep(decision.delay_seconds)

    def watch(self, attempt: int, group: str, state: AttemptState, deadline: datetime) -> Steps:
        """Watch a created group until something ends the attempt; returns `(decision, reported result)`."""
        while True:
            observation: Observation | None = None
            result: Any = None
            remaining = (deadline - self.now).total_seconds()
            if self.cancelled:
                observation = Observation(kind=ObservationKind.CANCELLED)
            elif remaining <= 0:
                observation = Observation(
                    kind=ObservationKind.TIMED_OUT,
                    message=f"the task ran longer than taskTimeoutSeconds={self.task.task_timeout_seconds}",
                )
            else:
                wait = min(remaining, self.poll())
                observation, result = yield from self.wait_for_news(attempt, group, wait, state.restarts_in_place)
            if observation is None:
                continue
            decision = decide(observation, state)
            # A restart in place also waits (Next.WAIT), so it must be acted on before the plain wait.
            if decision.group_action is GroupAction.RESTART_IN_PLACE:
                yield self.context.call_activity(names.RESTART_GROUP, {"name": group})
                state = replace(state, restarts_in_place=state.restarts_in_place + 1)
                continue
            if decision.next is Next.WAIT:
                continue
            if observation.exit_code is not None:
                self.publish(exit_code=observation.exit_code)
            return decision, result

    def poll(self) -> float:
        return max(0.1, self.task.poll_seconds)

    def wait_for_news(self, attempt: int, group: str, seconds: float, restarts: int = 0) -> Steps:
        """Wait for a callback, a cancel or the poll timer; returns `(observation or None, result)`."""
        woken, payload = yield from self.race(self.callbacks, seconds)
        if woken == "cancel":
            return None, None
        if woken == "event":
            return self.reported(attempt, payload)
        group_state = yield self.context.call_activity(names.GET_GROUP_STATE, {"name": group})
        observation = observation_from_state(group_state, restarts_requested=restarts)
        if observation is None or observation.kind is not ObservationKind.EXITED:
            return observation, None
        if self.callbacks.arrived() is None and self.heard_from != attempt:
            return observation, None  # a container that never calls back ends by its exit code
        # It exited after calling back (or while its group was read): its final report, sent before the exit,
        # carries the result and the group's state does not, so listen for it a little longer. A report that is
        # already in wins at once.
        deadline = self.now + timedelta(seconds=CALLBACK_GRACE_SECONDS)
        while (remaining := (deadline - self.now).total_seconds()) > 0:
            woken, payload = yield from self.race(self.callbacks, remaining)
            if woken != "event":
                break
            reported = self.reported(attempt, payload)
            if reported[0] is not None:
                return reported
        return observation, None

    def reported(self, attempt: int, payload: Any) -> tuple[Observation | None, Any]:
        """What a callback's payload tells: `(observation, result)`, or `(None, None)` when it ends nothing."""
        if payload is None:
            return None, None  # a report handled already: listen again after the next poll
        report = CallbackReport.from_event(payload)
        if report is None or report.attempt != attempt:
            return None, None  # a stale attempt's or malformed report: never completes this attempt
        self.heard_from = attempt
        if report.status is CallbackStatus.PROGRESS:
            self.publish(progress=report.progress)
            return None, None
        kind = (
            ObservationKind.CALLBACK_SUCCEEDED
            if report.status is CallbackStatus.SUCCEEDED
            else ObservationKind.CALLBACK_FAILED
        )
        return Observation(kind=kind, exit_code=report.exit_code, message=report.message), report.result

    def apply(self, decision: Decision, group: str) -> Steps:
        """Carry out the decision's group action (stop and/or delete), keeping the log tail."""
        keep = decision.group_action is GroupAction.STOP and not decision.delete_after_stop
        stop = decision.group_action is GroupAction.STOP
        cleanup = {"name": group, "stop": stop, "delete": not keep, "exitCode": self.record.exit_code}
        cleaned = yield self.context.call_activity(names.CLEANUP_GROUP, cleanup)
        if cleaned.get("logTail") is not None:
            self.publish(log_tail=cleaned["logTail"])
        if cleaned.get("exitCode") is not None and self.record.exit_code is None:
            self.publish(exit_code=cleaned["exitCode"])
        return decision


@bp.orchestration_trigger(context_name="context", orchestration=names.TASK_ORCHESTRATOR)
def task_orchestrator(context: df.DurableOrchestrationContext) -> Steps:
    task = TaskInput.from_dict(context.get_input())
    return (yield from TaskRun(context, task).run())
