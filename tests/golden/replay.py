"""Replay a recorded orchestration generation against the working tree's orchestrators, and check it the way
the Durable extension checks an in-flight instance after a deploy.

The check, and where it is written upstream: DTFx replays the stored history into the new code's actions and,
for every TaskScheduled, TimerCreated, SubOrchestrationInstanceCreated and EventSent event, requires an action
with that event's sequence number, of the matching kind and (activities, sub-orchestrations, sent events) of
the same name, compared case-insensitively; otherwise the instance fails with NonDeterministicOrchestrationException
(Azure/durabletask `src/DurableTask.Core/TaskOrchestrationContext.cs`: `HandleTaskScheduledEvent`,
`HandleTimerCreatedEvent`, `HandleSubOrchestrationCreatedEvent`, `HandleEventSentEvent`; microsoft/durabletask-python
`durabletask/worker.py`, `_OrchestrationExecutor.process_event` with `_get_non_determinism_error`,
`_get_wrong_action_type_error` and `_get_wrong_action_name_error`, checks the same). It compares no inputs: a
changed input replays silently, and is then handed to code that may not expect it. `Divergence` carries the
first mismatch in those terms; `payload_changes` reports input changes separately (see test_golden_replay.py).

DTFx also refuses a scheduling event whose action the code has not produced *yet* at that point of the history
(the same handlers: the action is looked up among those produced so far). For a Python orchestrator what has been
produced is what the extension's out-of-process shim has invoked, and it awaits each top-level action in order
(`devhost/shim.py`), over the whole history, with the actions the SDK gave for the episode being run. So for each
recorded episode the replay takes the actions of the soonest episode new code could run after it (the next one: an
instance deployed to right then), walks them through that model over the history up to the recorded episode's
scheduling events, and `order_divergence` names the first episode the shim had not got far enough in. Later
episodes' actions only add actions and cancel timers, which lets a shim get further, so the next episode's is the
one that can fail; the final episode's alone would miss an instance deployed to midway.

Sequence numbers are those devhost gave (`devhost.durable.Engine.schedule_actions`, `retry_bookkeeping`), which
follow DTFx: each numbered action in order, and for a `*WithRetry` action the RetryInterceptor's own events (a
timer after each failure, the next attempt when it fires) numbered before that episode's new actions. Those are
the host's, not actions of the orchestrator, so they are told apart here and left out of the comparison.
"""

from __future__ import annotations

import itertools
import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from azure.durable_functions.models.actions.ActionType import ActionType
from azure.durable_functions.models.history.HistoryEventType import HistoryEventType

from devhost import shim
from tests.orchestrators.actions import entity_name, flatten
from tests.orchestrators.harness import OUT_OF_PROC_ERROR, orchestrator_handles

# The history events an orchestrator's actions leave, each with the action kinds that may stand for it.
SCHEDULING_EVENTS: dict[HistoryEventType, tuple[ActionType, ...]] = {
    HistoryEventType.TASK_SCHEDULED: (ActionType.CALL_ACTIVITY, ActionType.CALL_ACTIVITY_WITH_RETRY),
    HistoryEventType.TIMER_CREATED: (ActionType.CREATE_TIMER,),
    HistoryEventType.SUB_ORCHESTRATION_INSTANCE_CREATED: (
        ActionType.CALL_SUB_ORCHESTRATOR,
        ActionType.CALL_SUB_ORCHESTRATOR_WITH_RETRY,
    ),
    HistoryEventType.EVENT_SENT: (ActionType.CALL_ENTITY, ActionType.SIGNAL_ENTITY),
}
# Actions that take no sequence number and leave no scheduling event (the SDK keys event waits by name; a
# continue-as-new ends the generation).
UNNUMBERED = (ActionType.WAIT_FOR_EXTERNAL_EVENT, ActionType.CONTINUE_AS_NEW)
WITH_RETRY = (ActionType.CALL_ACTIVITY_WITH_RETRY, ActionType.CALL_SUB_ORCHESTRATOR_WITH_RETRY)
# The generation's end, as devhost recorded it (`record.py`) and as the replay's final state says.
CONTINUED = "ContinuedAsNew"


def kind(event: dict[str, Any]) -> HistoryEventType:
    return HistoryEventType(event["EventType"])


@dataclass(frozen=True)
class Step:
    """One recorded scheduling event and the replayed action at its place (None when the replay has none)."""

    event: dict[str, Any]
    action: dict[str, Any] | None

    @property
    def number(self) -> int:
        return int(self.event["EventId"])

    @property
    def operation(self) -> str:
        """A sent entity message's operation: the message's `op`. The event's Name is "op" in Azure
        (`EntityMessageEventNames.RequestMessageEventName` names every request) and in devhost since issue 23;
        histories recorded before that hold the operation there instead."""
        return str(json.loads(self.event["Input"]).get("op", self.event["Name"]))

    def recorded(self) -> str:
        """The event as DTFx's messages name it."""
        event_kind = kind(self.event)
        if event_kind is HistoryEventType.EVENT_SENT:
            return f"{event_kind.name} to entity '{entity_name(self.event['InstanceId'])}' op '{self.operation}'"
        if event_kind is HistoryEventType.TIMER_CREATED:
            return str(event_kind.name)
        return f"{event_kind.name} '{self.event['Name']}'"

    def replayed(self) -> str:
        if self.action is None:
            return "nothing (yet?)"
        action_kind = ActionType(self.action["actionType"])
        if action_kind in (ActionType.CALL_ENTITY, ActionType.SIGNAL_ENTITY):
            entity = entity_name(self.action["instanceId"])
            return f"{action_kind.name} entity '{entity}' op '{self.action['operation']}'"
        if action_kind is ActionType.CREATE_TIMER:
            return str(action_kind.name)
        return f"{action_kind.name} '{self.action.get('functionName')}'"

    def mismatch(self) -> str | None:
        """DTFx's verdict on this step: None when the action may stand for the event, else why not."""
        if self.action is None:
            return "the replay has not scheduled it"
        action_kind = ActionType(self.action["actionType"])
        if action_kind not in SCHEDULING_EVENTS[kind(self.event)]:
            return "the replay produced another kind of action at this sequence number"
        if action_kind in (ActionType.CALL_ENTITY, ActionType.SIGNAL_ENTITY):
            same = (entity_name(self.action["instanceId"]), self.action["operation"]) == (
                entity_name(self.event["InstanceId"]),
                self.operation,
            )
            return None if same else "the replay sends another operation or to another entity"
        if action_kind is ActionType.CREATE_TIMER:
            return None
        if str(self.action["functionName"]).lower() != str(self.event["Name"]).lower():
            return "the replay calls another function at this sequence number"
        return None

    def payload_change(self) -> str | None:
        """How the replayed action's payload differs from the recorded one, if it does incompatibly: a dict may
        gain keys (an older receiver ignores them, a newer one must default them), nothing may be removed or
        changed. Timers compare their fire time."""
        if self.action is None:
            return None
        event_kind = kind(self.event)
        if event_kind is HistoryEventType.TIMER_CREATED:
            old, new = self.event["FireAt"], self.action["fireAt"]
        elif event_kind is HistoryEventType.EVENT_SENT:
            old, new = decoded(json.loads(self.event["Input"]).get("input")), decoded(self.action.get("input"))
        else:
            old, new = decoded(self.event.get("Input")), decoded(self.action.get("input"))
        problems = list(incompatibilities(old, new, "input"))
        return "; ".join(problems) if problems else None


def decoded(text: Any) -> Any:
    """Payloads travel as JSON text (entity inputs once more inside the message)."""
    return json.loads(text) if isinstance(text, str) else text


def incompatibilities(old: Any, new: Any, path: str) -> Iterator[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        for key, value in old.items():
            if key not in new:
                yield f"{path}.{key} was removed"
            else:
                yield from incompatibilities(value, new[key], f"{path}.{key}")
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for index, (before, after) in enumerate(zip(old, new, strict=True)):
            yield from incompatibilities(before, after, f"{path}[{index}]")
    elif old != new:
        yield f"{path} was {json.dumps(old)[:120]}, is now {json.dumps(new)[:120]}"


@dataclass
class _Retry:
    """DTFx's RetryInterceptor state for one `*WithRetry` action, as devhost keeps it."""

    max_attempts: int
    index: int  # the action's place among the replay's flattened actions
    task_id: int  # the sequence number of its latest attempt
    attempt: int = 1
    final_timer: int | None = None  # the timer after the last attempt failed: when it fires, the action has failed

    @property
    def keys(self) -> shim.RetryKeys:
        return shim.RetryKeys(self.task_id, self.final_timer)


@dataclass(frozen=True)
class Reached:
    """Where the extension's shim had got in the replayed actions when DTFx came to an episode's scheduling events
    (`order_divergence`)."""

    episode: int  # counted from 1
    scheduled: int  # the orchestrator's recorded scheduling events up to that episode's end
    progress: shim.Progress
    numbered: int  # of the actions the shim reached, those that take a sequence number


@dataclass
class Replay:
    instance: str
    orchestrator: str
    state: dict[str, Any]
    steps: list[Step] = field(default_factory=list)
    host_events: list[int] = field(default_factory=list)  # sequence numbers of the retry interceptor's events
    crash: str | None = None  # the SDK could not replay the history at all
    reached: list[Reached] = field(default_factory=list)  # per episode, once `steps` has no mismatch

    @property
    def verdict(self) -> str | None:
        """None when an in-flight instance would replay on the working tree, else why it would not."""
        step = self.divergence
        if step is not None:
            return self.describe(step)
        late = self.order_divergence
        if late is not None:
            return self.describe_late(late)
        if self.crash is not None:
            return (
                f"{self.orchestrator} {self.instance}: the SDK could not replay the recorded history on the working "
                f"tree ({self.crash[:300]}). An in-flight instance would fail after a deploy: see docs/versioning.md."
            )
        return None

    @property
    def divergence(self) -> Step | None:
        return next((step for step in self.steps if step.mismatch() is not None), None)

    def describe(self, step: Step) -> str:
        """The first mismatch, in the terms of DTFx's NonDeterministicOrchestrationException."""
        return (
            f"{self.orchestrator} {self.instance}: the recorded history has {step.recorded()} at sequence number "
            f"{step.number}, but the working tree's replay produced {step.replayed()} there ({step.mismatch()}). "
            "An in-flight instance would fail with a non-determinism error after a deploy: see docs/versioning.md."
        )

    @property
    def order_divergence(self) -> Reached | None:
        """The first episode whose recorded scheduling events the shim had not reached by then."""
        return next((point for point in self.reached if point.numbered < point.scheduled), None)

    def describe_late(self, point: Reached) -> str:
        """DTFx's other non-determinism: a scheduling event whose action the code has not produced *yet* when DTFx
        replays it, because the out-of-process shim still awaits an earlier action at that point of the history."""
        step = self.steps[point.numbered]
        return (
            f"{self.orchestrator} {self.instance}: the recorded history has {step.recorded()} at sequence number "
            f"{step.number} in episode {point.episode}, but when DTFx replays that episode the extension's shim is "
            f"still waiting for {point.progress.waiting_for or 'an earlier action'} in the working tree's actions, so "
            "the action is not scheduled yet. An in-flight instance would fail with a non-determinism error after a "
            "deploy: see docs/versioning.md."
        )

    @property
    def end(self) -> str:
        """How the replay left the generation: ContinuedAsNew, Completed, Failed or Running."""
        actions = list(flatten(self.state["actions"][0])) if self.state.get("actions") else []
        if actions and ActionType(actions[-1]["actionType"]) is ActionType.CONTINUE_AS_NEW:
            return CONTINUED
        if self.state.get("error") is not None:
            return "Failed"
        return "Completed" if self.state.get("isDone") else "Running"

    @property
    def continued_with(self) -> Any:
        actions = list(flatten(self.state["actions"][0])) if self.state.get("actions") else []
        return decoded(actions[-1].get("input")) if self.end == CONTINUED else None


def context_json(generation: dict[str, Any]) -> str:
    """The body devhost sent for the generation's last episode (`Engine.begin_episode`): the events before that
    episode played, the episode's own not. devhost sends no timer settings, so none are sent here either."""
    history = generation["history"]
    started = next(event for event in history if kind(event) is HistoryEventType.EXECUTION_STARTED)
    last = max(i for i, event in enumerate(history) if kind(event) is HistoryEventType.ORCHESTRATOR_STARTED)
    events = [{**event, "IsPlayed": index < last} for index, event in enumerate(history)]
    parent = started.get("ParentInstance") or {}
    context = {
        "history": events,
        "input": started.get("Input"),
        "instanceId": generation["instance"],
        "isReplaying": False,
        "parentInstanceId": parent.get("id") if isinstance(parent, dict) else None,
        "upperSchemaVersion": 1,
        "upperSchemaVersionNew": 2,
    }
    return json.dumps(context)


def run_handle(orchestrator: str, body: str) -> tuple[dict[str, Any], str | None]:
    """The SDK handle's state, also when the orchestrator failed (the SDK attaches it to the exception); and
    what broke when the SDK itself could not replay the history (no state then)."""
    handle = orchestrator_handles()[orchestrator]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the SDK's df_loads and duplicate-completion notes
        try:
            return json.loads(handle(body)), None
        except Exception as exc:
            if OUT_OF_PROC_ERROR in str(exc):
                return json.loads(str(exc).split(OUT_OF_PROC_ERROR, 1)[1]), None
            # E.g. a recorded entity answer handed to a task the new code made of another kind: in Azure the
            # episode fails the same way, so it is the replay's verdict, not an error of the test.
            return {}, f"{type(exc).__name__}: {exc}"


def episodes(history: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    current: list[dict[str, Any]] = []
    for event in history:
        if kind(event) is HistoryEventType.ORCHESTRATOR_STARTED and current:
            yield current
            current = []
        current.append(event)
    if current:
        yield current


def replay(generation: dict[str, Any]) -> Replay:
    """Replay one recorded generation; pair each recorded scheduling event with the action at its place, and
    check that the extension's shim had got to each such action when DTFx replays the event's episode."""
    state, crash = run_handle(generation["orchestrator"], context_json(generation))
    result = Replay(generation["instance"], generation["orchestrator"], state, crash=crash)
    if crash is not None:
        result.steps = first_divergence(generation)
        return result
    actions, numbered_at = numbered_places(state)
    numbered = iter([actions[index] for index in numbered_at])
    retried_tasks: dict[int, _Retry] = {}  # by the current attempt's sequence number
    retry_timers: dict[int, _Retry] = {}
    retries: list[_Retry] = []
    history = generation["history"]
    requests = shim.entity_requests(history)
    # Where each episode's delivered events end: DTFx comes to its scheduling events there.
    delivered = delivery_ends(history)
    for number, episode in enumerate(episodes(history), start=1):
        scheduled = [event for event in episode if kind(event) in SCHEDULING_EVENTS]
        # The interceptor's events come first in an episode, in the order of the events that caused them.
        for event in episode:
            if kind(event) is HistoryEventType.TASK_FAILED and event["TaskScheduledId"] in retried_tasks:
                retry = retried_tasks.pop(event["TaskScheduledId"])
                timer = scheduled.pop(0)
                retry_timers[timer["EventId"]] = retry
                if retry.attempt >= retry.max_attempts:
                    retry.final_timer = timer["EventId"]
                result.host_events.append(timer["EventId"])
            elif kind(event) is HistoryEventType.TIMER_FIRED and event["TimerId"] in retry_timers:
                retry = retry_timers.pop(event["TimerId"])
                if retry.attempt < retry.max_attempts:
                    retry.attempt += 1
                    again = scheduled.pop(0)
                    retried_tasks[again["EventId"]] = retry
                    retry.task_id = again["EventId"]
                    result.host_events.append(again["EventId"])
        # What DTFx has applied when it comes to this episode's first scheduling event: the shim must have got to
        # the actions those events stand for by then (it awaits each top-level action in order, `devhost.shim`).
        # The shim walks the actions of the episode the new code runs, which is a later one: the soonest is the next
        # episode, whose actions are the fewest (later ones only add actions and cancel timers, which a shim gets
        # past at once), so it is the one to check.
        seen = history[: delivered[number - 1]]
        # The next episode was delivered the history up to its own scheduling events; after the last, all of it.
        next_run = delivered[number] if number < len(delivered) else len(history)
        now, crash = run_handle(generation["orchestrator"], context_json({**generation, "history": history[:next_run]}))
        if crash is not None:  # the new code cannot run the episode after this one at all
            result.crash = crash
            return result
        now_actions, now_numbered = numbered_places(now)
        task_ids = [step.number for step in result.steps] + [event["EventId"] for event in scheduled]
        progress = shim.progress(
            now["actions"][0] if now.get("actions") else [],
            seen,
            sequence_numbers(len(now_actions), now_numbered, task_ids),
            {retry.index: retry.keys for retry in retries},
            requests,
        )  # fmt: skip
        for event in scheduled:
            step = Step(event, next(numbered, None))
            result.steps.append(step)
            if step.mismatch() is not None:
                return result  # DTFx stops at the first: what follows is numbered against another story
            assert step.action is not None
            if ActionType(step.action["actionType"]) in WITH_RETRY:
                options = step.action.get("retryOptions") or {}
                index = numbered_at[len(result.steps) - 1]
                retry = _Retry(int(options.get("maxNumberOfAttempts", 1)), index, step.number)
                retried_tasks[step.number] = retry
                retries.append(retry)
        reach = sum(1 for index in now_numbered if index < progress.reached)
        result.reached.append(Reached(number, len(result.steps), progress, reach))
    return result


def delivery_ends(history: list[dict[str, Any]]) -> list[int]:
    """For each episode, where in the history its delivered events end: at its first scheduling event, else at its
    end. What devhost handed the code for that episode is the history up to there."""
    ends: list[int] = []
    start = 0
    for episode in episodes(history):
        delivered = next((i for i, event in enumerate(episode) if kind(event) in SCHEDULING_EVENTS), len(episode))
        ends.append(start + delivered)
        start += len(episode)
    return ends


def numbered_places(state: dict[str, Any]) -> tuple[list[dict[str, Any]], list[int]]:
    """The SDK state's flattened actions, and the places of those that take a sequence number. A state without
    actions (the SDK could not replay that far) has none: the check by sequence number reports why."""
    actions = [a for a in flatten(state["actions"][0]) if a] if state.get("actions") else []
    return actions, [index for index, a in enumerate(actions) if ActionType(a["actionType"]) not in UNNUMBERED]


def sequence_numbers(count: int, numbered_at: list[int], recorded: list[int]) -> list[int | None]:
    """The sequence number of each flattened action, as the shim model wants them: the recorded ones in order for
    the actions that take one, None for waiters and for actions the history has not scheduled."""
    numbers: list[int | None] = [None] * count
    for index, number in zip(numbered_at, recorded, strict=False):
        numbers[index] = number
    return numbers


def first_divergence(generation: dict[str, Any]) -> list[Step]:
    """When the SDK cannot replay the whole history, the steps up to the first mismatch, found by replaying
    ever longer prefixes of it (one episode more each time): the mismatch that made the SDK fail."""
    history = generation["history"]
    ends = list(itertools.accumulate(len(episode) for episode in episodes(history)))
    for end in ends:
        partial = replay({**generation, "history": history[:end]})
        if partial.divergence is not None:
            return partial.steps
        if partial.crash is not None:
            return []
    return []
