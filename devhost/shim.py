"""How far the Durable extension's out-of-process shim gets through an episode's actions: a pure model.

In Azure, a Python orchestrator's actions are not scheduled as a set. The extension replays them inside an
in-process .NET orchestration (`OutOfProcOrchestrationShim.ProcessAsyncActionsV2`,
Azure/azure-functions-durable-extension): for each top-level action in order it calls the matching
`IDurableOrchestrationContext` API and *awaits* the task before it looks at the next one. DTFx replays that
.NET code over the history, so the shim only gets past an action whose .NET task has completed by then, and
actions after the first incomplete one are not scheduled in this episode. It also sets the output (or the
failure) only after it got through every action.

The .NET side decides completion with its own rules, which differ from the Python SDK's in places:

- a cancelled timer's task completes at once (its token is cancelled), though the timer is still scheduled;
- external events go to the most recently registered waiter of that name (a stack, as in the SDK), but an event
  that arrived while nobody waited is buffered and handed to exactly one later waiter
  (`DurableOrchestrationContext.WaitForExternalEvent` / `RaiseEvent`), where the Python SDK hands it to every
  later waiter (Azure/azure-functions-durable-python#507);
- `Task.WhenAny` completes when any child has, `Task.WhenAll` when all have;
- an entity call waits for the response event named by its request id through the same waiter mechanism.

So an orchestrator that races a waiter the SDK thinks completed against a timer it never cancels blocks the
shim until that timer fires: it hangs in Azure however it behaves under a kinder host. `progress` replays the
shim's view over an instance's history and says how far it gets, so devhost schedules what Azure would.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from azure.durable_functions.models.actions import ActionType
from azure.durable_functions.models.history import HistoryEventType

COMPOUND = frozenset({ActionType.WHEN_ANY, ActionType.WHEN_ALL})
# A signal sent with a scheduled time: an action type newer SDKs send that this SDK's `ActionType` does not name.
SCHEDULED_SIGNAL_ENTITY = 10
FIRE_AND_FORGET = frozenset({ActionType.SIGNAL_ENTITY, ActionType.CONTINUE_AS_NEW, SCHEDULED_SIGNAL_ENTITY})
WAITERS = frozenset({ActionType.WAIT_FOR_EXTERNAL_EVENT, ActionType.CALL_ENTITY})
TASK_ENDS = frozenset({
    HistoryEventType.TASK_COMPLETED,
    HistoryEventType.TASK_FAILED,
    HistoryEventType.SUB_ORCHESTRATION_INSTANCE_COMPLETED,
    HistoryEventType.SUB_ORCHESTRATION_INSTANCE_FAILED,
})  # fmt: skip
TASK_SUCCESSES = frozenset({HistoryEventType.TASK_COMPLETED, HistoryEventType.SUB_ORCHESTRATION_INSTANCE_COMPLETED})


@dataclass(frozen=True)
class RetryKeys:
    """What ends an action with a retry policy: its latest attempt's success, or the final (dummy) retry timer."""

    task_id: int
    final_timer_id: int | None = None


@dataclass(frozen=True)
class Progress:
    reached: int  # how many flattened actions the shim has invoked (so scheduled), in order
    blocked_at: int | None  # the top-level action it waits on, or None when it got through all of them
    waiting_for: str = ""  # what that action waits for, for a stuck report
    # History events DTFx had applied when the shim got there (all of them when blocked): where a continue-as-new
    # happens, which decides the events carried into the next generation (`durable.engine.Engine.continue_as_new`).
    applied: int = field(default=0, compare=False)


@dataclass
class _Leaf:
    index: int  # flattened index
    kind: int
    action: Mapping[str, Any]
    done: bool = False


@dataclass
class _Node:
    kind: int
    leaves: list[_Leaf] = field(default_factory=list)
    children: list[_Node | _Leaf] = field(default_factory=list)
    # A WhenAll's children before this index have completed. Completion never reverts (history events only add
    # to what has ended, fired or been handed an event), so they need no second look: without it, each event of
    # a fan-in re-checks every earlier member and a WhenAll of n tasks costs n^2 per episode.
    settled: int = 0


class _Replay:
    """The .NET context's state while the shim's replay walks the history."""

    def __init__(
        self,
        task_ids: Sequence[int | None],
        retries: Mapping[int, RetryKeys],
        request_ids: Mapping[str, str],
    ) -> None:
        self.task_ids = task_ids
        self.retries = retries
        self.request_ids = request_ids
        self.ended: set[int] = set()  # tasks and sub-orchestrations that completed or failed
        self.succeeded: set[int] = set()
        self.fired: set[int] = set()
        self.waiters: dict[str, list[_Leaf]] = defaultdict(list)  # a stack per event name
        self.buffered: dict[str, int] = defaultdict(int)
        self.flat = 0

    # -- invoking actions, as the shim does --------------------------------------------------------------

    def invoke(self, action: Mapping[str, Any]) -> _Node | _Leaf:
        kind = int(action.get("actionType", -1))
        if kind in COMPOUND:
            node = _Node(kind)
            for child in action.get("compoundActions") or []:
                node.children.append(self.invoke(child))
            return node
        leaf = _Leaf(self.flat, kind, action)
        self.flat += 1
        name = self.waiter_name(leaf)
        if name is not None:
            self.waiters[name].append(leaf)
            if self.buffered[name]:
                self.buffered[name] -= 1
                self.raise_event(name)
        return leaf

    def waiter_name(self, leaf: _Leaf) -> str | None:
        if leaf.kind == ActionType.WAIT_FOR_EXTERNAL_EVENT:
            return str(leaf.action.get("externalEventName"))
        if leaf.kind == ActionType.CALL_ENTITY:
            task_id = self.task_id(leaf)
            return None if task_id is None else self.request_ids.get(str(task_id))  # None: not sent yet
        return None

    def task_id(self, leaf: _Leaf) -> int | None:
        return self.task_ids[leaf.index] if leaf.index < len(self.task_ids) else None

    # -- history events, as DTFx applies them ------------------------------------------------------------

    def apply(self, event: Mapping[str, Any]) -> bool:
        """Apply one event; False when it is of a kind that cannot complete any .NET task (so no action's
        completion needs checking again)."""
        kind = event.get("EventType")
        if kind in TASK_ENDS:
            task_id = int(event["TaskScheduledId"])
            self.ended.add(task_id)
            if kind in TASK_SUCCESSES:
                self.succeeded.add(task_id)
        elif kind == HistoryEventType.TIMER_FIRED:
            self.fired.add(int(event["TimerId"]))
        elif kind == HistoryEventType.EVENT_RAISED:
            self.raise_event(str(event.get("Name")))
        else:
            return False
        return True

    def raise_event(self, name: str) -> None:
        stack = self.waiters.get(name)
        if stack:
            stack.pop().done = True  # the newest waiter of that name
        else:
            self.buffered[name] += 1

    # -- completion ---------------------------------------------------------------------------------------

    def complete(self, node: _Node | _Leaf) -> bool:
        if isinstance(node, _Node):
            if node.kind == ActionType.WHEN_ANY:
                return any(self.complete(child) for child in node.children)
            children = node.children
            while node.settled < len(children) and self.complete(children[node.settled]):
                node.settled += 1
            return node.settled == len(children)
        if node.done or node.kind in FIRE_AND_FORGET:
            return True
        if node.kind == ActionType.CREATE_TIMER:
            task_id = self.task_id(node)
            return bool(node.action.get("isCanceled")) or (task_id is not None and task_id in self.fired)
        if node.kind in {ActionType.CALL_ACTIVITY_WITH_RETRY, ActionType.CALL_SUB_ORCHESTRATOR_WITH_RETRY}:
            keys = self.retries.get(node.index)
            if keys is None:
                return False
            return keys.task_id in self.succeeded or (
                keys.final_timer_id is not None and keys.final_timer_id in self.fired
            )
        if node.kind in {ActionType.CALL_ACTIVITY, ActionType.CALL_SUB_ORCHESTRATOR, ActionType.CALL_HTTP}:
            task_id = self.task_id(node)
            return task_id is not None and task_id in self.ended
        # A waiter (event or entity response) not handed an event yet waits. An action type the shim does not know
        # does not: the shim throws when it invokes one, so the engine reaches it (and refuses it, failing the
        # orchestration) rather than waiting on it forever.
        return node.kind not in WAITERS

    def describe(self, node: _Node | _Leaf) -> str:
        if isinstance(node, _Node):
            word = "any" if node.kind == ActionType.WHEN_ANY else "all"
            return f"{word} of [" + ", ".join(self.describe(child) for child in node.children) + "]"
        action = node.action
        if node.kind == ActionType.WAIT_FOR_EXTERNAL_EVENT:
            return f"external event '{action.get('externalEventName')}'"
        if node.kind == ActionType.CREATE_TIMER:
            return f"timer due {action.get('fireAt')}"
        if node.kind == ActionType.CALL_ENTITY:
            return f"entity call {action.get('instanceId')}.{action.get('operation')}"
        label = ActionType(node.kind).name.lower() if node.kind in ActionType._value2member_map_ else "action"
        return f"{label} {action.get('functionName') or ''}".strip()


def progress(
    top_actions: Sequence[Mapping[str, Any]],
    history: Iterable[Mapping[str, Any]],
    task_ids: Sequence[int | None],
    retries: Mapping[int, RetryKeys] | None = None,
    requests: Mapping[str, str] | None = None,
) -> Progress:
    """How far the shim's replay of `top_actions` gets over `history` (every event up to this episode).

    `task_ids` gives the sequence number of each flattened action scheduled so far (None for waiters); `retries`
    what ends each action with a retry policy, by flattened index; `requests` each entity call's request id, by
    its sequence number as text (`entity_requests` reads them off a history).
    """
    replay = _Replay(task_ids, retries or {}, requests or {})
    pending = iter(history)
    applied = 0
    for position, action in enumerate(top_actions):
        node = replay.invoke(action)
        changed = True
        # The shim awaits the action: DTFx applies history events until its task completes. Events that complete
        # nothing (a TaskScheduled, an OrchestratorStarted) are applied without checking again.
        while not (changed and replay.complete(node)):
            next_event = next(pending, None)
            if next_event is None:
                return Progress(replay.flat, position, replay.describe(node), applied)
            changed = replay.apply(next_event)
            applied += 1
    return Progress(replay.flat, None, applied=applied)


def entity_requests(events: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Entity calls' request ids, by the sequence number (as text) of the EventSent that carried the request."""
    found: dict[str, str] = {}
    for item in events:
        if item.get("EventType") != HistoryEventType.EVENT_SENT:
            continue
        try:
            message = json.loads(item.get("Input") or "null")
        except ValueError:
            continue
        if isinstance(message, dict) and message.get("id") and not message.get("signal"):
            found[str(item["EventId"])] = str(message["id"])
    return found
