"""Task orchestrator: one task's life through attempts, each attempt one ACI container group.

Per attempt: take a capacity lease (waiting on `CapacityGranted` raced with a back-off timer; the first attempt
asks in the same round trip as registering at the job), wait for the lease's create slot (ACI's create rate),
create the group, race the signed callback against a poll timer until the task timeout, decide with
`acibatch.policy.decide`, clean the group up, release the lease and record usage.

No single failure ends more than this task, and nothing it holds outlives it: an activity or entity call that
fails is an observation the policy decides on (a create error, an unreadable group) or, past that, a failed
task whose group is cleaned up and whose lease is released (`run`). Histories stay bounded: every
WAITS_PER_GENERATION waits the orchestration continues as new with a `TaskCheckpoint`, and when it ends it
continues once more so the final record is the last generation's input and the chunk hears only the outcome.
"""

from __future__ import annotations

from collections.abc import Generator
from contextlib import suppress
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.durable_functions as df

from acibatch import durable_names as names
from acibatch.callbacks import CallbackReport, CallbackStatus
from acibatch.checkpoint import WAITS_PER_GENERATION, Phase, TaskCheckpoint, TaskStart, attempt_state
from acibatch.naming import container_group_name
from acibatch.observe import observation_from_state
from acibatch.policy import AttemptState, Decision, GroupAction, Next, Observation, ObservationKind, decide
from acibatch.records import TaskRecord, TaskState
from orchestrators import bp
from orchestrators.task_events import Events

Steps = Generator[Any, Any, Any]

CAPACITY = df.EntityId(names.CAPACITY_ENTITY, names.CAPACITY_KEY)
# How long a container that has called back, then exited, is given for its final report to arrive (it sent it
# before exiting, but its event may reach the orchestration after the poll that saw the exit).
CALLBACK_GRACE_SECONDS = 5.0
# Polls whose group read fails in a row before the attempt counts as lost (each read already retried by the SDK).
MAX_UNREADABLE_POLLS = 5
CLEANUP_RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=5_000, max_number_of_attempts=3)
MAX_THROTTLED_DELETES = 10  # deletes ARM refuses with 429 before the group is left to the orphan sweep
ERROR_TEXT_MAX = 500


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_iso(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def _capacity_wait_seconds(waits: int) -> float:
    # Wake-ups come as CapacityGranted events (raised by an at-least-once activity); the timer only heals a
    # lost one, so it starts late and backs off: a thousand waiting tasks must not poll the capacity entity.
    return float(min(30 * 2**waits, 300))


def _failure_text(exc: BaseException) -> str:
    return str(exc).strip()[:ERROR_TEXT_MAX] or type(exc).__name__


class ContinueAsNew(Exception):
    """Unwinds to `TaskRun.run`, which continues the orchestration as new from `start`."""

    def __init__(self, start: TaskStart) -> None:
        super().__init__("continue as new")
        self.start = start


class TaskRun:
    def __init__(self, context: df.DurableOrchestrationContext, start: TaskStart) -> None:
        self.context = context
        self.task = task = start.task
        resume = start.resume
        self.resumed = resume
        self.progress = df.EntityId(names.PROGRESS_ENTITY, task.progress_key)
        self.tenant = df.EntityId(names.TENANT_ENTITY, task.tenant)
        self.record = resume.record if resume else TaskRecord(id=task.task_id)
        self.attempt = resume.attempt if resume else 1
        self.priority = resume.priority if resume else task.priority
        self.state: AttemptState = (resume and resume.attempt_state) or attempt_state(task, 1, self.priority)
        self.create_at = resume.create_at if resume else 0.0
        self.deadline = _parse_iso(resume.deadline) if resume and resume.deadline else None
        self.heard_from = resume.heard_from if resume else 0  # the last attempt that reported through a callback
        self.capacity_waits = resume.capacity_waits if resume else 0
        self.generation = resume.generation if resume else 1
        self.waits_here = 0  # waits in this generation (see `maybe_continue`)
        self.handovers: list[dict[str, Any]] = []  # leases this generation's releases handed on (`TaskStart`)
        self.cancel_waiter = context.wait_for_external_event(names.EVENT_CANCEL)
        self.cancelled = False
        self.callbacks = Events(context, names.EVENT_CALLBACK, resume.handled if resume else ())
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
        self.record = replace(self.record, **changes)
        self.context.set_custom_status(self.record.live_status())

    def report_state(self, state: TaskState) -> None:
        self.context.signal_entity(self.progress, "set", {"taskId": self.task.task_id, "state": str(state)})

    def finish(self, state: TaskState, error: str | None = None) -> TaskRecord:
        # A task that succeeded after a failed attempt or create keeps that error: it says why attempts > 1.
        error = error if error is not None else self.record.error
        self.publish(state=state, finished_at=_iso(self.now), error=error, pending_reason=None)
        self.report_state(state)
        self.context.signal_entity(self.tenant, "task_finished", {"outcome": str(state)})
        return self.record

    # -- the whole life, and what happens when something in it fails ------------------------------------------

    def run(self) -> Steps:
        try:
            record = yield from self.lifecycle()
        except ContinueAsNew as moving_on:
            self.context.continue_as_new(moving_on.start.to_dict())
            return None
        except Exception as exc:  # past the policy's reach: end this task (never the job) and give back what it holds
            record = yield from self.fail_safely(f"the task failed: {_failure_text(exc)}")
        self.context.continue_as_new(TaskStart(self.task, final=record, handovers=tuple(self.handovers)).to_dict())
        return None

    def fail_safely(self, reason: str) -> Steps:
        """Clean up the current group and release the lease, each best-effort (the orphan sweep and the lease
        reconciliation heal what fails here), then fail the task with `reason`."""
        if self.group is not None:
            try:
                yield self.context.call_activity_with_retry(
                    names.CLEANUP_GROUP, CLEANUP_RETRY, {"name": self.group, "stop": True, "delete": True}
                )
            except Exception as exc:
                reason += f"; its container group {self.group} could not be deleted ({_failure_text(exc)})"
        yield from self.release()
        return self.finish(TaskState.FAILED, reason)

    def lifecycle(self) -> Steps:
        answer: dict[str, Any] | None = None
        if self.resumed is None:
            request = self.lease_request()
            # Register with the job and ask for the first lease at once: one round trip instead of two, which is
            # seconds when a thousand tasks start together. A task of a cancelled job gives the lease straight back.
            begin, answer = yield self.context.task_all([
                self.context.call_entity(self.progress, "begin", self.task.task_id),
                self.context.call_entity(CAPACITY, "acquire", request),
            ])  # fmt: skip
            if begin.get("cancelled"):
                if answer is not None and answer["status"] != "REJECTED":
                    yield from self.release()
                return self.finish(TaskState.CANCELLED, "the job was cancelled before this task started")
            phase = Phase.QUEUED
            self.start_attempt()
        else:
            phase = self.resumed.phase
            self.context.set_custom_status(self.record.live_status())
            # Events raised while the orchestration switched generations may be lost; the job's cancel mark is not.
            marked = yield self.context.call_entity(self.progress, "cancelled")
            self.cancelled = bool(marked and marked.get("cancelled"))
        while True:
            if phase is Phase.QUEUED:
                refusal = yield from self.acquire(answer)
                answer = None
                if refusal is not None:
                    return self.finish(TaskState.CANCELLED if self.cancelled else TaskState.FAILED, refusal)
                self.state = attempt_state(self.task, self.attempt, self.priority, self.record.platform_retries)
                self.publish(attempts=self.attempt, pending_reason=None)
                phase = Phase.CREATE
            decision, result = yield from self.run_attempt(phase)
            yield from self.release()
            if decision.dependency_action is not None or decision.job_action is not None:
                # An exit condition decided the task's end: its dependents and its job act on what it said.
                self.publish(dependency_action=decision.dependency_action, job_action=decision.job_action)
            if decision.next is Next.SUCCEED:
                self.publish(result=result)
                return self.finish(TaskState.SUCCEEDED)
            if decision.next is Next.CANCEL:
                return self.finish(TaskState.CANCELLED, decision.reason)
            if decision.next is not Next.NEW_ATTEMPT:
                return self.finish(TaskState.FAILED, decision.reason)
            self.publish(error=decision.reason)
            if decision.platform:  # shown on the task, and never counted against maxAttempts
                self.publish(platform_retries=self.record.platform_retries + 1)
            self.attempt, self.priority = self.attempt + 1, decision.next_priority
            self.start_attempt()
            self.report_state(TaskState.QUEUED)  # back in the queue until the next attempt gets a lease
            phase = Phase.QUEUED

    def start_attempt(self) -> None:
        self.group, self.deadline, self.create_at, self.capacity_waits = None, None, 0.0, 0
        name = container_group_name(self.task.tenant, self.task.job_id, self.task.task_id, self.attempt)
        self.publish(state=TaskState.QUEUED, attempt=self.attempt, group_name=name, exit_code=None)

    def maybe_continue(self, phase: Phase) -> None:
        """Count a wait; after WAITS_PER_GENERATION of them continue as new, unless an event is waiting to be
        read (it is handled first, here: events raised into an ending generation may not reach the next one)."""
        self.waits_here += 1
        if self.waits_here < WAITS_PER_GENERATION:
            return
        if self.cancelled or self.cancel_waiter.is_completed or self.event_may_be_kept(phase):
            return
        raise ContinueAsNew(TaskStart(self.task, resume=self.checkpoint(phase)))

    def event_may_be_kept(self, phase: Phase) -> bool:
        """Whether an event this phase reads may be waiting unread: in an open waiter that fired, or kept by the
        SDK for the next waiter of its name (a muted name, or callbacks not raced since the group was created).
        Only the phase's own events count: a wake-up while a group runs or a callback while queued is stale
        (the lease is held; the attempt ended), and the next generation asks for the lease again."""
        if phase is Phase.QUEUED:
            return bool(self.grants.arrived()) or self.grants.muted
        if phase is Phase.WATCH:
            return bool(self.callbacks.arrived()) or self.callbacks.muted or not self.callbacks.raced
        return False  # CREATE: the group does not exist yet, so nothing of this attempt calls back

    def checkpoint(self, phase: Phase) -> TaskCheckpoint:
        return TaskCheckpoint(
            phase=phase,
            record=self.record,
            attempt=self.attempt,
            priority=self.priority,
            attempt_state=self.state if phase is not Phase.QUEUED else None,
            create_at=self.create_at,
            deadline=None if self.deadline is None else _iso(self.deadline),
            heard_from=self.heard_from,
            handled=tuple(self.callbacks.handled),
            capacity_waits=self.capacity_waits,
            generation=self.generation + 1,
        )

    # -- admission ---------------------------------------------------------------------------------------

    def lease_request(self) -> dict[str, Any]:
        return {
            "leaseId": self.lease_id,
            "tenant": self.task.tenant,
            "cores": self.task.cpu,
            "memoryGb": self.task.memory_gb,
            "requestedAt": self.now.timestamp(),
            "spot": self.priority == "Spot",
            **({"priority": self.task.job_priority} if self.task.job_priority else {}),
        }

    def acquire(self, answer: dict[str, Any] | None) -> Steps:
        """Hold a capacity lease; returns None when granted, else why the task cannot run.

        `answer` is the capacity entity's answer to the request already sent for this lease, if any.
        """
        while True:
            if self.cancelled:
                # Through `release`: if the lease was granted meanwhile, whoever gets it next is woken.
                yield from self.release()
                return "the job was cancelled while the task was queued"
            if answer is None:
                answer = yield self.context.call_entity(CAPACITY, "acquire", self.lease_request())
            status, reason = answer["status"], answer.get("reason")
            granted_at = answer.get("createAt")
            answer = None
            if status == "GRANTED":
                self.create_at = float(granted_at or 0.0)
                return None
            if status == "REJECTED":
                if self.priority == "Spot" and self.task.spot_fallback:
                    self.priority = "Regular"  # the region cannot give this task Spot cores: ask for Regular ones
                    self.publish(error=f"Spot is not possible ({reason}); falling back to Regular")
                    continue
                return f"the task can never be scheduled: {reason}"
            if reason != self.record.pending_reason:
                self.publish(pending_reason=reason)
            self.maybe_continue(Phase.QUEUED)
            woken, granted = yield from self.race(self.grants, _capacity_wait_seconds(self.capacity_waits))
            # The releasing task's capacity call already granted these leases; asking again would only add a
            # round trip to the dispatch path. A stale, foreign or repeated wake-up (or the timer) asks again.
            if woken == "event" and isinstance(granted, dict) and self.lease_id in granted.get("leases", []):
                self.create_at = float(granted.get("createAt", {}).get(self.lease_id, 0.0))
                return None
            self.capacity_waits += 1

    def release(self) -> Steps:
        """Give the lease back and wake whoever it goes to; best-effort (reconciliation reclaims a lost one)."""
        try:
            released = yield self.context.call_entity(
                CAPACITY, "release", {"leaseId": self.lease_id, "now": self.now.timestamp()}
            )
        except Exception:
            return
        granted = released.get("granted", [])
        if granted:
            self.handovers.append({"freedAt": _iso(self.now), "to": [lease["leaseId"] for lease in granted]})
            with suppress(Exception):  # each waiter's own back-off timer heals a lost wake-up
                yield self.context.call_activity(names.WAKE_WAITERS, granted)
        lease = released.get("released")
        if lease:
            began = max(float(lease["startedAt"]), float(lease.get("createAt", 0.0)))
            seconds = max(0.0, self.now.timestamp() - began)
            self.context.signal_entity(
                self.tenant,
                "record_usage",
                {"leaseId": self.lease_id, "cores": self.task.cpu, "memoryGb": self.task.memory_gb, "seconds": seconds},
            )

    # -- waiting ---------------------------------------------------------------------------------------------

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

    # -- one attempt ---------------------------------------------------------------------------------------

    def run_attempt(self, phase: Phase) -> Steps:
        """Run the attempt from `phase` (CREATE or WATCH) to its decision; returns `(decision, reported result)`."""
        self.group = group = self.record.group_name
        assert group is not None
        while True:
            if phase is Phase.CREATE:
                refused = yield from self.create(group)
                if refused is not None:
                    return (yield from self.apply(refused, group)), None
            decision, result = yield from self.watch(group)
            if decision.next is not Next.RETRY_CREATE:
                return (yield from self.apply(decision, group)), result
            # Provisioning failed after the create was accepted, in a way the policy retries (ACI's capacity, a
            # transient error): the same attempt is created again, as after a synchronous create error.
            yield from self.retry_create(decision, group)
            phase = Phase.CREATE

    def create(self, group: str) -> Steps:
        """Create the group once its create slot has come; returns None once created, else the decision that
        ends the attempt. Errors the policy calls transient, throttling and quota re-create the same attempt
        (same group name, attempt number and token) after a back-off or ARM's Retry-After."""
        create_input = {
            **self.task.to_dict(),
            "name": group,
            "attempt": self.attempt,
            "priority": self.priority,
            "owner": self.context.instance_id,
            "createdAt": int(self.now.timestamp()),
        }
        while True:
            if self.cancelled:
                return decide(Observation(kind=ObservationKind.CANCELLED), self.state)
            wait = self.create_at - self.now.timestamp()
            if wait > 0.001:  # a timer fires at its instant, give or take a float's rounding
                if self.record.pending_reason is None:  # else the wait's own reason (quota, capacity, 429) stands
                    self.publish(pending_reason=f"create rate: ACI's create limit; next create in {wait:.0f} s")
                self.maybe_continue(Phase.CREATE)
                yield from self.sleep(wait)
                continue
            try:
                created = yield self.context.call_activity(names.CREATE_GROUP, create_input)
            except Exception as exc:  # the activity itself failed (timeout, worker lost): transient, like a 5xx
                created = {"ok": False, "error": {"status": None, "code": None, "message": _failure_text(exc)}}
            if created["ok"]:
                self.callbacks.not_raced()  # its container may call back before the first wait
                if self.deadline is None:  # a re-create of the same attempt keeps its first deadline
                    self.deadline = self.now + timedelta(seconds=self.task.task_timeout_seconds)
                self.publish(state=TaskState.RUNNING, started_at=self.record.started_at or _iso(self.now),
                             pending_reason=None)  # fmt: skip
                self.report_state(TaskState.RUNNING)
                return None
            error = created["error"]
            observation = Observation(
                kind=ObservationKind.CREATE_FAILED,
                arm_status=error.get("status"),
                arm_code=error.get("code"),
                arm_message=error.get("message"),
                retry_after=error.get("retryAfter"),
            )
            decision = decide(observation, self.state)
            if decision.next is not Next.RETRY_CREATE:
                return decision
            yield from self.retry_create(decision, group)  # the loop then waits for the new slot (one wait)

    def retry_create(self, decision: Decision, group: str) -> Steps:
        """Before the same attempt is created again: delete what the failed create left, count the error (or the
        wait: throttling, quota and capacity never fail the task) and reserve the next create slot."""
        yield from self.cleanup({"name": group, "stop": False, "delete": True})
        if decision.pending_reason is not None:
            self.state = replace(self.state, waits=self.state.waits + 1)
            if self.record.state is TaskState.RUNNING:  # provisioning failed after the create was accepted
                self.report_state(TaskState.QUEUED)
            self.publish(state=TaskState.QUEUED, pending_reason=decision.pending_reason)
        else:
            self.state = replace(self.state, transient_errors=self.state.transient_errors + 1)
            self.publish(error=decision.reason)
        yield from self.reserve_slot(decision)

    def reserve_slot(self, decision: Decision) -> Steps:
        """A new create slot after the decision's delay; ARM's throttling moves every task's next create."""
        not_before = self.now.timestamp() + decision.delay_seconds
        throttled = (decision.pending_reason or "").startswith("ARM throttled")
        request = {
            "leaseId": self.lease_id,
            "now": self.now.timestamp(),
            "notBefore": not_before,
            "throttled": throttled,
        }
        try:
            answer = yield self.context.call_entity(CAPACITY, "reserve_create", request)
        except Exception:
            answer = None
        slot = answer.get("createAt") if isinstance(answer, dict) else None
        self.create_at = max(not_before, float(slot or 0.0))

    def watch(self, group: str) -> Steps:
        """Watch a created group until something ends the attempt; returns `(decision, reported result)`."""
        assert self.deadline is not None
        unreadable = 0
        while True:
            observation: Observation | None = None
            result: Any = None
            remaining = (self.deadline - self.now).total_seconds()
            if self.cancelled:
                observation = Observation(kind=ObservationKind.CANCELLED)
            elif remaining <= 0:
                observation = Observation(
                    kind=ObservationKind.TIMED_OUT,
                    message=f"the task ran longer than taskTimeoutSeconds={self.task.task_timeout_seconds}",
                )
            else:
                self.maybe_continue(Phase.WATCH)
                try:
                    observation, result = yield from self.wait_for_news(group, min(remaining, self.poll()))
                    unreadable = 0
                except Exception as exc:  # the group could not be read: the callback and later polls may still tell
                    unreadable += 1
                    if unreadable >= MAX_UNREADABLE_POLLS:
                        observation = Observation(
                            kind=ObservationKind.LOST,
                            message=f"its state could not be read {unreadable} times in a row: {_failure_text(exc)}",
                        )
            if observation is None:
                continue
            decision = decide(observation, self.state)
            # A restart in place also waits (Next.WAIT), so it must be acted on before the plain wait.
            if decision.group_action is GroupAction.RESTART_IN_PLACE:
                try:
                    yield self.context.call_activity(names.RESTART_GROUP, {"name": group})
                except Exception as exc:
                    decision = decide(Observation(ObservationKind.LOST, message=_failure_text(exc)), self.state)
                    return decision, None
                self.state = replace(self.state, restarts_in_place=self.state.restarts_in_place + 1)
                continue
            if decision.next is Next.WAIT:
                continue
            if observation.exit_code is not None:
                self.publish(exit_code=observation.exit_code)
            return decision, result

    def poll(self) -> float:
        return max(0.1, self.task.poll_seconds)

    def wait_for_news(self, group: str, seconds: float) -> Steps:
        """Wait for a callback, a cancel or the poll timer; returns `(observation or None, result)`."""
        woken, payload = yield from self.race(self.callbacks, seconds)
        if woken == "cancel":
            return None, None
        if woken == "event":
            return self.reported(payload)
        group_state = yield self.context.call_activity(names.GET_GROUP_STATE, {"name": group})
        if "throttled" in group_state:
            return None, None  # ARM throttled the read: nothing learned; the next poll asks again
        observation = observation_from_state(group_state, restarts_requested=self.state.restarts_in_place)
        if observation is None or observation.kind is not ObservationKind.EXITED:
            return observation, None
        if self.callbacks.muted:
            # A report may be kept by the SDK while the name is muted (after a repeat): race for it once more.
            self.callbacks.timer_fired()
        elif self.callbacks.arrived() is None and self.heard_from != self.attempt:
            return observation, None  # a container that never calls back ends by its exit code
        # It exited after calling back (or while its group was read): its final report, sent before the exit,
        # carries the result and the group's state does not, so listen for it a little longer. A report that is
        # already in wins at once.
        deadline = self.now + timedelta(seconds=CALLBACK_GRACE_SECONDS)
        while (remaining := (deadline - self.now).total_seconds()) > 0:
            woken, payload = yield from self.race(self.callbacks, remaining)
            if woken != "event":
                break
            reported = self.reported(payload)
            if reported[0] is not None:
                return reported
        return observation, None

    def reported(self, payload: Any) -> tuple[Observation | None, Any]:
        """What a callback's payload tells: `(observation, result)`, or `(None, None)` when it ends nothing."""
        if payload is None:
            return None, None  # a report handled already: listen again after the next poll
        report = CallbackReport.from_event(payload)
        if report is None or report.attempt != self.attempt:
            return None, None  # a stale attempt's or malformed report: never completes this attempt
        self.heard_from = self.attempt
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
        cleaned = yield from self.cleanup(
            {"name": group, "stop": stop, "delete": not keep, "exitCode": self.record.exit_code}
        )
        if cleaned.get("logTail") is not None:
            self.publish(log_tail=cleaned["logTail"])
        if cleaned.get("exitCode") is not None and self.record.exit_code is None:
            self.publish(exit_code=cleaned["exitCode"])
        return decision

    def cleanup(self, request: dict[str, Any]) -> Steps:
        """Stop and/or delete a group, retried. A delete waits for its slot in ACI's delete windows
        (`acibatch.armrate`) and, if ARM throttles it anyway, for its Retry-After; the group keeps its lease
        meanwhile. A group that cannot be deleted is left to the orphan sweep (its owner is finished or has moved
        on) rather than failing the task for it."""
        throttled_for = 0.0
        kept: dict[str, Any] = {}
        for _ in range(MAX_THROTTLED_DELETES):
            if request.get("delete"):
                yield from self.wait_for_delete_slot(throttled_for)
            try:
                cleaned = yield self.context.call_activity_with_retry(names.CLEANUP_GROUP, CLEANUP_RETRY, request)
            except Exception as exc:
                self.note_left_behind(request["name"], _failure_text(exc))
                return kept
            cleaned = cleaned if isinstance(cleaned, dict) else {}
            if not cleaned.get("retryAfter"):
                return {**kept, **{key: value for key, value in cleaned.items() if value is not None}}
            throttled_for = float(cleaned["retryAfter"])
            request = {**request, "stop": False}  # stopped already; the log tail was kept in `cleaned`
            kept = cleaned
        self.note_left_behind(request["name"], "ARM kept throttling its delete")
        return kept

    def wait_for_delete_slot(self, throttled_for: float) -> Steps:
        """Reserve a delete slot (after ARM's Retry-After when it throttled the last try) and wait until it. Not
        `sleep`: after a cancel that returns at once, and the delete must still wait. Best-effort: without an
        answer the delete goes at once (ARM's 429 still holds it back)."""
        now = self.now.timestamp()
        request = {"now": now, "notBefore": now + throttled_for, "throttled": throttled_for > 0}
        try:
            answer = yield self.context.call_entity(CAPACITY, "reserve_delete", request)
        except Exception:
            answer = None
        delete_at = max(request["notBefore"], float((answer or {}).get("deleteAt") or 0.0))
        if delete_at > self.now.timestamp():
            yield self.context.create_timer(datetime.fromtimestamp(delete_at, UTC))

    def note_left_behind(self, group: str, why: str) -> None:
        note = f"container group {group} was not cleaned up ({why}); the orphan sweep deletes it"
        self.publish(error=note if self.record.error is None else f"{self.record.error}; {note}")


@bp.orchestration_trigger(context_name="context", orchestration=names.TASK_ORCHESTRATOR)
def task_orchestrator(context: df.DurableOrchestrationContext) -> Steps:
    start = TaskStart.from_input(context.get_input())
    if start.final is not None:
        # The last generation: the full record stays here (the API reads it); the chunk receives only the outcome.
        context.set_custom_status(start.final.live_status())
        outcome = {"id": start.final.id, "state": str(start.final.state)}
        # What the job needs of an exit condition's decision (dependents, terminate), only when there was one.
        if start.final.dependency_action is not None:
            outcome["dependencyAction"] = start.final.dependency_action
        if start.final.job_action is not None:
            outcome["jobAction"] = start.final.job_action
        return outcome
    return (yield from TaskRun(context, start).run())
