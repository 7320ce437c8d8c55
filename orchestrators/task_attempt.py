"""One attempt of a task: create its container group once its create slot has come, then race the signed
callback against a poll timer until the task timeout, and decide with `acibatch.policy.decide`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any

from acibatch.aci import TERMINATED, ArmError, GroupState
from acibatch.callbacks import CallbackReport, CallbackStatus
from acibatch.checkpoint import Phase
from acibatch.messages.aci import CleanupRequest, CreateGroupInput, CreateResult, GroupRef, GroupStateAnswer
from acibatch.messages.capacity import CreateSlotAnswer, CreateSlotAsk
from acibatch.observe import observation_from_state
from acibatch.policy import Decision, ErrorClass, GroupAction, Next, Observation, ObservationKind, decide
from acibatch.records import TaskState
from orchestrators import calls
from orchestrators.calls import Steps
from orchestrators.task_agent import (
    TERMINAL,
    agent_report,
    from_result,
    group_ended,
    start_upload_grace,
    time_limit,
    timed_out,
    uploading,
    waits_past_timeout,
)
from orchestrators.task_cleanup import apply, cleanup
from orchestrators.task_events import callback_event, callback_token_format
from orchestrators.task_generations import maybe_continue
from orchestrators.task_run import TaskRun, Woken, failure_text, iso

# How long a container that has called back, then exited, is given for its final report to arrive (it sent it
# before exiting, but its event may reach the orchestration after the poll that saw the exit).
CALLBACK_GRACE_SECONDS = 5.0
# Polls whose group read fails in a row before the attempt counts as lost (each read already retried by the SDK).
MAX_UNREADABLE_POLLS = 5
# An agent task's look at its timeout (`last_look`) that learns nothing (ARM throttled the read, or it failed) is
# tried again this many times, after ARM's Retry-After (else a poll interval) capped at LAST_LOOK_WAIT_MAX_SECONDS:
# a busy ARM must not time out a command that ended just before its timeout. The bound keeps the attempt's end within
# the SAS window's slack (acibatch.blobstore.sas.ORCHESTRATION_SLACK).
LAST_LOOK_RETRIES = 3
LAST_LOOK_WAIT_MAX_SECONDS = 60.0

# What an attempt's watch learned: an observation to decide on (None: nothing that ends it) and the result a
# callback reported.
News = tuple[Observation | None, Any]


def run_attempt(run: TaskRun, phase: Phase) -> Steps[tuple[Decision, Any]]:
    """Run the attempt from `phase` (CREATE or WATCH) to its decision; returns `(decision, reported result)`."""
    run.group = group = run.record.group_name
    assert group is not None
    while True:
        if phase is Phase.CREATE:
            refused = yield from create(run, group)
            if refused is not None:
                return (yield from apply(run, refused, group)), None
        decision, result = yield from watch(run, group)
        if decision.next is not Next.RETRY_CREATE:
            return (yield from apply(run, decision, group)), result
        # Provisioning failed after the create was accepted, in a way the policy retries (ACI's capacity, a
        # transient error): the same attempt is created again, as after a synchronous create error.
        yield from retry_create(run, decision, group)
        phase = Phase.CREATE


def create(run: TaskRun, group: str) -> Steps[Decision | None]:
    """Create the group once its create slot has come; returns None once created, else the decision that ends
    the attempt. Errors the policy calls transient, throttling and quota re-create the same attempt (same group
    name, attempt number and token) after a back-off or ARM's Retry-After."""
    request = CreateGroupInput(
        task=run.task,
        name=group,
        attempt=run.attempt,
        priority=run.priority,
        owner=run.context.instance_id,
        created_at=int(run.now.timestamp()),
        token_format=callback_token_format(run.callback_events),
    )
    while True:
        if run.cancelled:
            return decide(Observation(kind=ObservationKind.CANCELLED), run.state)
        wait = run.create_at - run.now.timestamp()
        if wait > 0.001:  # a timer fires at its instant, give or take a float's rounding
            if run.record.pending_reason is None:  # else the wait's own reason (quota, capacity, 429) stands
                run.publish(pending_reason=f"create rate: ACI's create limit; next create in {wait:.0f} s")
            maybe_continue(run, Phase.CREATE)
            yield from run.sleep(wait)
            continue
        try:
            answer = yield calls.create_group(run.context, request)
        except Exception as exc:  # the activity itself failed (timeout, worker lost): transient, like a 5xx
            created = CreateResult(ArmError(None, None, failure_text(exc)))
        else:
            created = CreateResult.parse(answer)
        if created.error is None:
            # Its container may call back before the first wait, under this attempt's name when names carry it.
            run.callbacks.rename(callback_event(run.callback_events, run.attempt))
            run.callbacks.not_raced()
            if run.deadline is None:  # a re-create of the same attempt keeps its first deadline
                run.deadline = run.now + timedelta(seconds=run.task.task_timeout_seconds)
            # The command runs (again, in a re-create): its uploads' grace starts when it ends (`start_upload_grace`).
            run.upload_deadline = None
            run.publish(state=TaskState.RUNNING, started_at=run.record.started_at or iso(run.now), pending_reason=None)
            run.report_state(TaskState.RUNNING)
            return None
        error = created.error
        observation = Observation(
            kind=ObservationKind.CREATE_FAILED,
            arm_status=error.status,
            arm_code=error.code,
            arm_message=error.message,
            retry_after=error.retry_after,
        )
        decision = decide(observation, run.state)
        if decision.next is not Next.RETRY_CREATE:
            return decision
        yield from retry_create(run, decision, group)  # the loop then waits for the new slot (one wait)


def retry_create(run: TaskRun, decision: Decision, group: str) -> Steps[None]:
    """Before the same attempt is created again: delete what the failed create left, count the error (or the
    wait: throttling, quota and capacity never fail the task) and reserve the next create slot."""
    yield from cleanup(run, CleanupRequest(group, stop=False, delete=True))
    if decision.pending_reason is not None:
        if decision.wait is not ErrorClass.THROTTLED:  # Retry-After paces throttling, not the back-off
            run.state = replace(run.state, waits=run.state.waits + 1)
        if run.record.state is TaskState.RUNNING:  # provisioning failed after the create was accepted
            run.report_state(TaskState.QUEUED)
        run.publish(state=TaskState.QUEUED, pending_reason=decision.pending_reason)
    else:
        run.state = replace(run.state, transient_errors=run.state.transient_errors + 1)
        run.publish(error=decision.reason)
    yield from reserve_slot(run, decision)


def reserve_slot(run: TaskRun, decision: Decision) -> Steps[None]:
    """A new create slot after the decision's delay; ARM's throttling moves every task's next create."""
    not_before = run.now.timestamp() + decision.delay_seconds
    throttled = decision.wait is ErrorClass.THROTTLED
    ask = CreateSlotAsk(run.lease_id, run.now.timestamp(), not_before, throttled)
    try:
        answer = CreateSlotAnswer.parse((yield calls.reserve_create(run.context, ask)))
    except Exception:
        answer = CreateSlotAnswer(None)
    run.create_at = max(not_before, answer.at or 0.0)


def watch(run: TaskRun, group: str) -> Steps[tuple[Decision, Any]]:
    """Watch a created group until something ends the attempt; returns `(decision, reported result)`."""
    assert run.deadline is not None
    unreadable = 0
    while True:
        observation: Observation | None = None
        result: Any = None
        # An agent task whose command has ended waits for its uploads past the timeout (`task_agent.time_limit`).
        remaining = (time_limit(run) - run.now).total_seconds()
        if run.cancelled:
            observation = Observation(kind=ObservationKind.CANCELLED)
        elif remaining <= 0 and run.task.agent and run.upload_deadline is None:
            # The command's time is up, but it may have ended since the last poll: its outputs deserve their
            # upload grace, so look once more (a few times, when ARM does not answer) before timing it out.
            observation, result = yield from last_look(run, group)
            if observation is None and uploading(run):
                continue  # the command had ended: its uploads have their grace
            if observation is None:
                observation = timed_out(run)
        elif remaining <= 0:
            observation = timed_out(run)
        else:
            maybe_continue(run, Phase.WATCH)
            try:
                observation, result = yield from wait_for_news(run, group, min(remaining, poll_seconds(run)))
                unreadable = 0
            except Exception as exc:  # the group could not be read: the callback and later polls may still tell
                unreadable += 1
                if unreadable >= MAX_UNREADABLE_POLLS:
                    observation = Observation(
                        kind=ObservationKind.LOST,
                        message=f"its state could not be read {unreadable} times in a row: {failure_text(exc)}",
                    )
        if observation is None:
            continue
        decision = decide(observation, run.state)
        if waits_past_timeout(run, decision):
            # Past an agent task's timeout nothing restarts its command or waits for one that has not ended (a wait
            # here would poll again at once, with no timer, for ever): the attempt has timed out.
            observation = timed_out(run, observation.message)
            decision = decide(observation, run.state)
        # A restart in place also waits (Next.WAIT), so it must be acted on before the plain wait.
        if decision.group_action is GroupAction.RESTART_IN_PLACE:
            try:
                yield calls.restart_group(run.context, GroupRef(group))
            except Exception as exc:
                decision = decide(Observation(ObservationKind.LOST, message=failure_text(exc)), run.state)
                return decision, None
            run.state = replace(run.state, restarts_in_place=run.state.restarts_in_place + 1)
            run.upload_deadline = None  # the command runs again: its uploads' grace starts when it ends anew
            continue
        if decision.next is Next.WAIT:
            continue
        if observation.exit_code is not None:
            run.publish(exit_code=observation.exit_code)
        return decision, result


def poll_seconds(run: TaskRun) -> float:
    return max(0.1, run.task.poll_seconds)


def wait_for_news(run: TaskRun, group: str, seconds: float) -> Steps[News]:
    """Wait for a callback, a cancel or the poll timer."""
    woken, payload = yield from run.race(run.callbacks, seconds)
    if woken is Woken.CANCEL:
        return None, None
    if woken is Woken.EVENT:
        return reported(run, payload)
    return (yield from poll(run, group))


def last_look(run: TaskRun, group: str) -> Steps[News]:
    """The poll at an agent task's timeout (see `watch`): what it tells, `(None, None)` when it learned nothing
    that ends the attempt (the command had ended and its uploads' grace has begun, or no look could read the
    group). A look that learns nothing is tried again LAST_LOOK_RETRIES times after a bounded wait, in which a
    report or a cancel is heard."""
    wait = 0.0
    for retry in range(LAST_LOOK_RETRIES + 1):
        if retry:
            woken, payload = yield from run.race(run.callbacks, min(wait, LAST_LOOK_WAIT_MAX_SECONDS))
            if woken is Woken.CANCEL:
                return Observation(kind=ObservationKind.CANCELLED), None
            news = reported(run, payload) if woken is Woken.EVENT else (None, None)
            if news[0] is not None:
                return news
        try:
            answer = GroupStateAnswer.parse((yield calls.get_group_state(run.context, GroupRef(group))))
        except Exception:  # the read failed (each already retried by the SDK): look again after a poll interval
            wait = poll_seconds(run)
            continue
        if answer.throttled is None and answer.state is not None:
            return (yield from polled(run, answer.state))
        wait = max(answer.throttled or 0.0, 1.0)  # ARM's Retry-After: looking sooner would be throttled again
    return None, None


def poll(run: TaskRun, group: str) -> Steps[News]:
    """Read the group's state: what it tells (an agent task's through `agent_polled`)."""
    group_state = GroupStateAnswer.parse((yield calls.get_group_state(run.context, GroupRef(group))))
    if group_state.throttled is not None or group_state.state is None:
        return None, None  # ARM throttled the read: nothing learned; the next poll asks again
    return (yield from polled(run, group_state.state))


def polled(run: TaskRun, state: Mapping[str, Any]) -> Steps[News]:
    """What a read of the group's state tells."""
    observation = observation_from_state(state, restarts_requested=run.state.restarts_in_place)
    if run.task.agent:
        return (yield from agent_polled(run, state, observation))
    if observation is None or observation.kind is not ObservationKind.EXITED:
        return observation, None
    if run.callbacks.muted:
        # A report may be kept by the SDK while the name is muted (after a repeat): race for it once more.
        run.callbacks.listen_again()
    elif run.callbacks.arrived() is None and run.heard_from != run.attempt:
        return observation, None  # a container that never calls back ends by its exit code
    # It exited after calling back (or while its group was read): its final report, sent before the exit,
    # carries the result and the group's state does not, so listen for it a little longer. A report that is
    # already in wins at once.
    deadline = run.now + timedelta(seconds=CALLBACK_GRACE_SECONDS)
    while (remaining := (deadline - run.now).total_seconds()) > 0:
        woken, payload = yield from run.race(run.callbacks, remaining)
        if woken is not Woken.EVENT:
            break
        news = reported(run, payload)
        if news[0] is not None:
            return news
    return observation, None


def agent_polled(run: TaskRun, state: Mapping[str, Any], observation: Observation | None) -> Steps[News]:
    """What a poll of an agent task's group means. A terminated task container starts the upload grace; from the
    timeout on, a task container still at work is the command's timeout, whatever the task reported and whether
    or not its uploads' grace had begun."""
    assert run.deadline is not None
    if GroupState.from_dict(state).container_state == TERMINATED:
        start_upload_grace(run)
    else:
        # The command is at work: again, if ACI restarted it after it had ended (on an emptied volume it runs from
        # the start). Its time is the command's again, and its uploads get their grace when it ends anew.
        run.upload_deadline = None
        if observation is None and run.now >= run.deadline:
            return timed_out(run), None
    if observation is None or observation.kind is not ObservationKind.EXITED:
        return observation, None
    return (yield from agent_backstop(run, state, observation))


def agent_backstop(run: TaskRun, state: Mapping[str, Any], exited: Observation) -> Steps[News]:
    """The task container of an agent task has exited: nothing ends until the whole group has (the sidecar is still
    saving logs and uploading). Then a report that came in meanwhile is read first, and result.json decides."""
    if not group_ended(state):
        return None, None
    arrived = run.callbacks.arrived()
    if arrived is not None:
        news = reported(run, run.callbacks.take(arrived))
        if news[0] is not None:
            return news  # the agent's own report: the same facts as its result.json
    return (yield from from_result(run, exited))


def reported(run: TaskRun, payload: Any) -> News:
    """What a callback's payload tells: `(observation, result)`, or `(None, None)` when it ends nothing."""
    if payload is None:
        return None, None  # a report handled already: listen again after the next poll
    report = CallbackReport.from_event(payload)
    if report is None or report.attempt != run.attempt:
        return None, None  # a stale attempt's or malformed report: never completes this attempt
    if report.status is CallbackStatus.COMPLETED or (run.task.agent and report.status in TERMINAL):
        return agent_report(run, report)
    run.heard_from = run.attempt
    if report.status is CallbackStatus.PROGRESS:
        run.publish(progress=report.progress)
        return None, None
    kind = (
        ObservationKind.CALLBACK_SUCCEEDED
        if report.status is CallbackStatus.SUCCEEDED
        else ObservationKind.CALLBACK_FAILED
    )
    return Observation(kind=kind, exit_code=report.exit_code, message=report.message), report.result
