"""Fan-in: run an orchestrator blocked on `task_all` only when one of its members' results can matter.

The SDK records a task's action when the orchestrator yields it, so after an episode that did not finish,
the last action is what the orchestrator is blocked on. When that is a `task_all` (a WhenAll action) of
activities, sub-orchestrations or entity calls, a member's *successful* result cannot resume the orchestrator
while another member is outstanding: the SDK resumes a WhenAll when all members have completed or one has
failed. Such results are stored as pending events as usual but start no episode (a fan-in of n children then
replays its history a few times instead of n times). Everything else starts one at once: the last member's
result, any failure, a timer, a raised event, a result that is no member's; that episode is then given every
event held so far, in arrival order. The delay is bounded by the moment the WhenAll could resume anyway.

A WhenAll with a member that has already failed is not held for: the orchestrator may have caught the failure
and be waiting on a single member.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import chain
from typing import Any

from azure.durable_functions.models.actions import ActionType
from azure.durable_functions.models.history import HistoryEventType

TASK_COMPLETED, TASK_FAILED = HistoryEventType.TASK_COMPLETED, HistoryEventType.TASK_FAILED
SUB_COMPLETED = HistoryEventType.SUB_ORCHESTRATION_INSTANCE_COMPLETED
SUB_FAILED = HistoryEventType.SUB_ORCHESTRATION_INSTANCE_FAILED
EVENT_SENT, EVENT_RAISED = HistoryEventType.EVENT_SENT, HistoryEventType.EVENT_RAISED
# The members a held WhenAll may have (a *WithRetry call is a WhenAll of its attempts in the SDK: not held for).
MEMBER_ACTIONS = frozenset({ActionType.CALL_ACTIVITY, ActionType.CALL_SUB_ORCHESTRATOR, ActionType.CALL_ENTITY})

Member = tuple[str, str]  # ("task", scheduled id) for activities and sub-orchestrations, ("entity", request id)


def result_of(event: dict[str, Any]) -> tuple[Member | None, bool]:
    """Which member's result an event is, if any, and whether it succeeded."""
    kind = event["EventType"]
    if kind in {TASK_COMPLETED, SUB_COMPLETED, TASK_FAILED, SUB_FAILED}:
        return ("task", str(event.get("TaskScheduledId"))), kind in {TASK_COMPLETED, SUB_COMPLETED}
    if kind == EVENT_RAISED:  # an entity's answer is raised under the request id; a failed one says so
        return ("entity", str(event.get("Name"))), '"exceptionType"' not in str(event.get("Input") or "")
    return None, False


@dataclass
class Gather:
    members: frozenset[Member]
    remaining: int  # members whose result has not arrived
    held: int  # pending events held for it

    def holds(self, event: dict[str, Any]) -> bool:
        """Account for a newly pending event; True when it needs no episode yet."""
        member, succeeded = result_of(event)
        if member not in self.members:
            return False
        self.remaining -= 1
        if succeeded and self.remaining > 0:
            self.held += 1
            return True
        return False

    def waits(self, pending: int) -> bool:
        """True while every pending event is held for this WhenAll and some member is still outstanding."""
        return self.remaining > 0 and self.held >= pending


def blocked_on(
    top_actions: list[dict[str, Any]],
    action_ids: list[int | None],
    history: Iterable[dict[str, Any]],
    pending: list[dict[str, Any]],
) -> Gather | None:
    """The WhenAll the orchestrator is now blocked on, if the rule above applies.

    `action_ids` are the scheduled ids of the flattened actions. Whether a member is still outstanding is read
    from the events themselves (a result in the history or pending, or none), never from bookkeeping that a
    restart could leave stale.
    """
    if not top_actions or top_actions[-1].get("actionType") != ActionType.WHEN_ALL:
        return None
    children = top_actions[-1].get("compoundActions") or []
    kinds = {child.get("actionType") for child in children}
    if not children or not kinds <= MEMBER_ACTIONS:
        return None  # nested compounds, timers, retries: not held for
    ids = action_ids[len(action_ids) - len(children) :]  # a last compound's leaves are the last actions
    if len(ids) != len(children) or any(task_id is None for task_id in ids):
        return None
    entity_calls = {
        str(task_id)
        for task_id, child in zip(ids, children, strict=True)
        if child.get("actionType") == ActionType.CALL_ENTITY
    }
    members: set[Member] = {("task", str(task_id)) for task_id in ids if str(task_id) not in entity_calls}
    requests: dict[str, str] = {}  # entity call's scheduled id -> the request id its answer is raised under
    resulted: set[Member] = set()
    failed: set[Member] = set()
    for event in chain(history, pending):
        member, succeeded = result_of(event)
        if member is not None:
            resulted.add(member)
            if not succeeded:
                failed.add(member)
        if event["EventType"] == EVENT_SENT and str(event.get("EventId")) in entity_calls:
            requests[str(event["EventId"])] = json.loads(event["Input"])["id"]
    if len(requests) != len(entity_calls):
        return None
    members |= {("entity", request) for request in requests.values()}
    if members & failed:
        return None
    remaining = len(members - resulted)
    held = sum(1 for event in pending if result_of(event)[0] in members)
    return Gather(frozenset(members), remaining, held) if remaining > 0 else None
