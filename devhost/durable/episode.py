"""The heart of devhost's Durable engine: what one orchestrator episode does, as a pure function.

`apply_reply` takes an instance's record, the events its episode delivered and the worker's reply (the SDK's
`OrchestratorState`: actions, output, custom status, or a failure) and decides, as the Durable extension's
shim and DTFx would, the new history (appended to the record), its bookkeeping, and an `Outcome`: the effects to
carry out (activities to run, timers to arm, children to start, messages for entities) and how the execution
ends, if it does. It reads no clock (`now` is given), makes no ids of its own (`new_request_id` is given), does
no I/O and holds no engine state, so tests run it on built records and assert exact histories and effects.

Actions are dispatched on the SDK's `ActionType`, one handler each (`ACTION_HANDLERS`); delivered events that
drive a retry policy on the SDK's `HistoryEventType` (`RETRY_HANDLERS`). It is the host's side of what
durabletask-python's `_OrchestrationExecutor.execute` does on the worker's side.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from azure.durable_functions.models.actions import ActionType
from azure.durable_functions.models.history import HistoryEventType

from devhost import fanin, payloadlimits, shim
from devhost.app import AppIndex
from devhost.durable.records import Instance, entity_name
from devhost.durable.vocabulary import (
    EVENT_RAISED,
    EVENT_SENT,
    EXECUTION_COMPLETED,
    ORCHESTRATOR_COMPLETED,
    STATUS_COMPLETED,
    STATUS_FAILED,
    SUB_CREATED,
    TASK_SCHEDULED,
    TIMER_CREATED,
    DurableError,
    describe_action,
    end_payload_error,
    event,
    flatten,
    instance_id_problem,
    is_continue_as_new,
    iso,
    parse_iso,
    payload_text,
    unknown_entity,
    unknown_orchestrator,
)

HTTP_ACTIVITY = "BuiltIn::HttpActivity"


# -- what an episode asks for -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunActivity:
    task_id: int
    work: dict[str, Any]  # {"name", "input" | "http", "execution"}, as stored in the activities rows


@dataclass(frozen=True)
class ArmTimer:
    timer_id: int
    fire_at: float


@dataclass(frozen=True)
class StartChild:
    name: str
    instance_id: str
    input: Any
    parent: dict[str, Any]  # {"id", "taskId", "execution"}


@dataclass(frozen=True)
class SendToEntity:
    entity_id: str
    operation: dict[str, Any]  # an entry of the entity's queue


Effect = RunActivity | ArmTimer | StartChild | SendToEntity


@dataclass(frozen=True)
class Completed:
    output: Any


@dataclass(frozen=True)
class Failed:
    error: str  # the reason, as the SDK or the extension gave it


@dataclass(frozen=True)
class ContinuedAsNew:
    input: Any
    carried: list[dict[str, Any]]  # the batch's raised events DTFx met after the shim reached ContinueAsNew


Ending = Completed | Failed | ContinuedAsNew


@dataclass(frozen=True)
class Reply:
    """The worker's answer to an episode: the SDK's state (empty when there is none) and its failure, if any."""

    state: dict[str, Any]
    error: str | None = None


@dataclass
class Outcome:
    effects: list[Effect] = field(default_factory=list)  # in the order the engine carries them out
    end: Ending | None = None
    stuck: shim.Progress | None = None  # the shim still awaits an action the SDK went past: worth a warning
    gather: fanin.Gather | None = None  # the task_all the orchestrator is now blocked on, if results can wait


# -- the episode ----------------------------------------------------------------------------------------------


@dataclass
class _Episode:
    """One application's working set: the record it updates and what it has decided so far."""

    instance: Instance
    app: AppIndex
    now: float
    new_request_id: Callable[[], str]
    scheduled: list[dict[str, Any]] = field(default_factory=list)  # history events of the actions scheduled
    outcome: Outcome = field(default_factory=Outcome)

    def allocate(self) -> int:
        task_id = self.instance.next_id
        self.instance.next_id += 1
        return task_id

    def record(self, kind: HistoryEventType, task_id: int, **fields: Any) -> None:
        self.scheduled.append(event(kind, task_id, at=self.now, **fields))


def apply_reply(
    instance: Instance,
    started: dict[str, Any],
    delivered: list[dict[str, Any]],
    reply: Reply,
    *,
    app: AppIndex,
    now: float,
    new_request_id: Callable[[], str],
) -> Outcome:
    """Apply an episode's reply to `instance`: take its delivered events off the pending queue, append the new
    history, schedule the actions the shim reaches and decide how the execution ends.

    `started` is the episode's OrchestratorStarted event. `now` stamps the events written here and times retry
    timers. What the record cannot hold (work to start, the end to carry out) comes back in the `Outcome`.
    """
    episode = _Episode(instance, app, now, new_request_id)
    outcome = episode.outcome
    state, error = reply.state, reply.error
    instance.take_pending(len(delivered))
    continued_first, instance.first_batch = instance.first_batch is not None, None
    past = len(instance.history)
    new_history = [started, *delivered]
    for delivered_event in delivered:
        _retry_bookkeeping(episode, delivered_event)
    top_actions = (state.get("actions") or [[]])[0] if state.get("actions") else []
    actions = flatten(top_actions)
    blocked: shim.Progress | None = None
    view: shim.Progress | None = None
    status_error = payloadlimits.custom_status_error(state.get("customStatus"))
    if status_error is not None:
        # The shim sets the custom status first and throws: nothing of the episode is scheduled.
        error = status_error
    elif state:
        # The shim replays the SDK's actions in order, awaiting each, even when the SDK reports a failure; it
        # takes the output or the failure only once it got through all of them.
        view = shim.progress(
            top_actions, itertools.chain(instance.history, new_history), instance.action_ids,
            retry_keys(instance), instance.entity_requests,
        )  # fmt: skip
        try:
            _schedule_actions(episode, actions, view.reached)
            if view.blocked_at is not None and (error is not None or state.get("isDone")):
                blocked = view
            elif view.reached < len(actions):
                outcome.stuck = view
            elif error is None and state.get("isDone"):
                error = end_payload_error(actions, state)
        except DurableError as exc:
            error = str(exc)
        # Each work item's .NET context is new and the shim sets the custom status only when the SDK sent one
        # (the SDK leaves out falsy ones), so an episode without one stores null; except the first episode of a
        # continued generation, which keeps the status the last one had (DTFx carries it).
        reported = state.get("customStatus")
        if reported is not None or not continued_first:
            instance.custom_status = reported
    instance.history.extend([*new_history, *episode.scheduled, event(ORCHESTRATOR_COMPLETED, at=now)])
    if blocked is not None:
        outcome.stuck = blocked
        outcome.gather = _gather(instance, top_actions)
    elif error is not None:
        instance.history.append(event(EXECUTION_COMPLETED, at=now, OrchestrationStatus=STATUS_FAILED, Result=error))
        outcome.end = Failed(error)
    elif state.get("isDone"):
        if is_continue_as_new(actions):
            # DTFx applied the events up to `view.applied` when the shim reached the continue-as-new; the external
            # events after that point in this batch go to the next generation.
            first_after = max(0, (view.applied if view else 0) - past - 1)  # - 1: OrchestratorStarted
            carried = [item for item in delivered[first_after:] if item["EventType"] == EVENT_RAISED]
            outcome.end = ContinuedAsNew(actions[-1].get("input"), carried)
        else:
            output = state.get("output")
            instance.history.append(
                event(EXECUTION_COMPLETED, at=now, OrchestrationStatus=STATUS_COMPLETED, Result=json.dumps(output))
            )
            outcome.end = Completed(output)
    else:
        outcome.gather = _gather(instance, top_actions)
    return outcome


def _gather(instance: Instance, top_actions: list[dict[str, Any]]) -> fanin.Gather | None:
    return fanin.blocked_on(top_actions, instance.action_ids, instance.history, instance.pending)


def retry_keys(instance: Instance) -> dict[int, shim.RetryKeys]:
    return {
        int(index): shim.RetryKeys(int(record["taskId"]), record.get("finalTimerId"))
        for index, record in instance.retries.items()
    }


# -- retry policies (DTFx semantics, §2.6) --------------------------------------------------------------------

# Which field of a delivered event names the retry record it drives, and the record's key it must match.
_RETRY_KEYS: dict[int, tuple[str, str]] = {
    HistoryEventType.TASK_FAILED: ("TaskScheduledId", "taskId"),
    HistoryEventType.SUB_ORCHESTRATION_INSTANCE_FAILED: ("TaskScheduledId", "taskId"),
    HistoryEventType.TIMER_FIRED: ("TimerId", "timerId"),
}


def retry_record_for(instance: Instance, new_event: dict[str, Any]) -> dict[str, Any] | None:
    """The retry policy record an event drives (an attempt's failure, a retry timer), if any."""
    keys = _RETRY_KEYS.get(new_event["EventType"])
    if keys is None:
        return None
    event_field, record_key = keys
    for record in instance.retries.values():
        if new_event.get(event_field) == record.get(record_key):
            return record
    return None


def _attempt_failed(episode: _Episode, record: dict[str, Any], _: dict[str, Any]) -> None:
    """An attempt failed: a retry timer, or after the last attempt the final ("dummy") timer that ends it."""
    timer_id = episode.allocate()
    last = record["attempt"] >= record["max"]
    fire_at = episode.now + (0 if last else record["intervalMs"] / 1000)
    record["timerId"] = timer_id
    if last:
        record["finalTimerId"] = timer_id  # its firing ends the action (`devhost.shim`)
    episode.record(TIMER_CREATED, timer_id, FireAt=iso(fire_at))
    episode.instance.timers[str(timer_id)] = fire_at
    episode.outcome.effects.append(ArmTimer(timer_id, fire_at))


def _retry_timer_fired(episode: _Episode, record: dict[str, Any], _: dict[str, Any]) -> None:
    """A retry timer fired: the next attempt, unless that was the final (dummy) timer."""
    record["timerId"] = None
    if record["attempt"] >= record["max"]:
        return
    record["attempt"] += 1
    task_id = episode.allocate()
    record["taskId"] = task_id
    _schedule_work(episode, task_id, record["action"])


RetryHandler = Callable[[_Episode, dict[str, Any], dict[str, Any]], None]
RETRY_HANDLERS: dict[int, RetryHandler] = {
    HistoryEventType.TASK_FAILED: _attempt_failed,
    HistoryEventType.SUB_ORCHESTRATION_INSTANCE_FAILED: _attempt_failed,
    HistoryEventType.TIMER_FIRED: _retry_timer_fired,
}


def _retry_bookkeeping(episode: _Episode, new_event: dict[str, Any]) -> None:
    record = retry_record_for(episode.instance, new_event)
    if record is not None:
        RETRY_HANDLERS[new_event["EventType"]](episode, record, new_event)


# -- actions --------------------------------------------------------------------------------------------------

# Actions the extension gives no sequence number: waiting is no task of the backend's, and continue-as-new ends
# the execution.
UNNUMBERED = frozenset({ActionType.CONTINUE_AS_NEW, ActionType.WAIT_FOR_EXTERNAL_EVENT})
WITH_RETRY = frozenset({ActionType.CALL_ACTIVITY_WITH_RETRY, ActionType.CALL_SUB_ORCHESTRATOR_WITH_RETRY})


def _schedule_actions(episode: _Episode, actions: list[dict[str, Any]], reach: int) -> None:
    """Schedule the flattened actions from the first new one up to `reach`, where the shim stops."""
    # Cancelled timers stay scheduled and still fire: DTFx schedules every timer the shim creates and only its
    # .NET task ends early, so the backend delivers TimerFired later (one more episode, ignored by the SDK).
    instance = episode.instance
    for index in range(instance.seen, reach):
        action = actions[index]
        kind = action.get("actionType")
        if kind in UNNUMBERED:
            instance.action_ids.append(None)
            continue
        task_id = episode.allocate()
        instance.action_ids.append(task_id)
        if kind in WITH_RETRY:
            options = action.get("retryOptions") or {}
            instance.retries[str(index)] = {
                "action": action, "taskId": task_id, "attempt": 1, "timerId": None,
                "max": int(options.get("maxNumberOfAttempts", 1)),
                "intervalMs": float(options.get("firstRetryIntervalInMilliseconds", 0)),
            }  # fmt: skip
        _schedule_work(episode, task_id, action)
    instance.seen = max(instance.seen, reach)


def _schedule_work(episode: _Episode, task_id: int, action: dict[str, Any]) -> None:
    kind = action.get("actionType")
    problem = payloadlimits.payload_error(f"input of the {describe_action(action)}", payload_text(action.get("input")))
    if problem is not None:
        raise DurableError(400, problem)
    handler = ACTION_HANDLERS.get(kind) if isinstance(kind, int) else None
    if handler is None:
        raise DurableError(400, f"unsupported action type {kind}")
    handler(episode, task_id, action)


def _call_activity(episode: _Episode, task_id: int, action: dict[str, Any]) -> None:
    name = str(action["functionName"])
    activities = episode.app.activities
    if name.lower() not in activities:
        known = ", ".join(sorted(f.name for f in activities.values()))
        raise DurableError(
            400, f"The function '{name}' doesn't exist, is disabled, or is not an activity function. "
            f"Additional info: The following are the known activity functions: '{known}'.",
        )  # fmt: skip
    episode.record(TASK_SCHEDULED, task_id, Name=name, Version="", Input=action.get("input"))
    _run(episode, task_id, {"name": name, "input": action.get("input"), "execution": episode.instance.execution_id})


def _call_http(episode: _Episode, task_id: int, action: dict[str, Any]) -> None:
    episode.record(TASK_SCHEDULED, task_id, Name=HTTP_ACTIVITY, Version="")
    work = {"name": HTTP_ACTIVITY, "http": action.get("httpRequest"), "execution": episode.instance.execution_id}
    _run(episode, task_id, work)


def _run(episode: _Episode, task_id: int, work: dict[str, Any]) -> None:
    episode.instance.activities[str(task_id)] = work
    episode.outcome.effects.append(RunActivity(task_id, work))


def _call_sub_orchestrator(episode: _Episode, task_id: int, action: dict[str, Any]) -> None:
    instance = episode.instance
    name = str(action["functionName"])
    if name.lower() not in episode.app.orchestrators:
        raise unknown_orchestrator(name, [f.name for f in episode.app.orchestrators.values()])
    child_id = action.get("instanceId") or f"{instance.execution_id}:{task_id}"
    episode.record(
        SUB_CREATED, task_id, Name=name, InstanceId=child_id, Input=action.get("input"), Version=action.get("version")
    )
    instance.children[str(task_id)] = {"id": child_id, "name": name, "input": action.get("input")}
    problem = instance_id_problem(child_id)
    if problem is not None:  # starting the child refuses it, after the creation was recorded: the parent fails
        raise DurableError(400, problem)
    parent = {"id": instance.id, "taskId": task_id, "execution": instance.execution_id}
    episode.outcome.effects.append(StartChild(name, child_id, action.get("input"), parent))


def _create_timer(episode: _Episode, task_id: int, action: dict[str, Any]) -> None:
    fire_at = parse_iso(str(action["fireAt"]))
    episode.record(TIMER_CREATED, task_id, FireAt=action["fireAt"])
    episode.instance.timers[str(task_id)] = fire_at  # even when created cancelled: see _schedule_actions
    episode.outcome.effects.append(ArmTimer(task_id, fire_at))


# Every request to an entity is an EventSent named "op" in Azure whatever the operation; the operation is in the
# message (azure-functions-durable-extension, EntityScheduler/EntityMessageEventNames.cs, RequestMessageEventName).
ENTITY_REQUEST_EVENT_NAME = "op"


def _send_to_entity(episode: _Episode, task_id: int, action: dict[str, Any]) -> None:
    instance = episode.instance
    entity_id = str(action["instanceId"])
    if entity_name(entity_id) not in episode.app.entities:
        raise unknown_entity(entity_name(entity_id))
    signal = action.get("actionType") == ActionType.SIGNAL_ENTITY
    request_id = episode.new_request_id()
    message: dict[str, Any] = {"op": action["operation"], "input": action.get("input"), "id": request_id,
                               "parent": instance.id, "parentExecution": instance.execution_id}  # fmt: skip
    if signal:
        message["signal"] = True
    else:
        instance.entity_requests[str(task_id)] = request_id
    episode.record(EVENT_SENT, task_id, InstanceId=entity_id, Name=ENTITY_REQUEST_EVENT_NAME, Input=json.dumps(message))
    raw_input = action.get("input")
    operation = {
        "name": action["operation"], "input": None if raw_input is None else json.dumps(raw_input),
        "isSignal": signal, "id": request_id, "parent": instance.id, "parentExecution": instance.execution_id,
    }  # fmt: skip
    episode.outcome.effects.append(SendToEntity(entity_id, operation))


ActionHandler = Callable[[_Episode, int, dict[str, Any]], None]
ACTION_HANDLERS: dict[int, ActionHandler] = {
    ActionType.CALL_ACTIVITY: _call_activity,
    ActionType.CALL_ACTIVITY_WITH_RETRY: _call_activity,
    ActionType.CALL_SUB_ORCHESTRATOR: _call_sub_orchestrator,
    ActionType.CALL_SUB_ORCHESTRATOR_WITH_RETRY: _call_sub_orchestrator,
    ActionType.CREATE_TIMER: _create_timer,
    ActionType.CALL_ENTITY: _send_to_entity,
    ActionType.SIGNAL_ENTITY: _send_to_entity,
    ActionType.CALL_HTTP: _call_http,
}
