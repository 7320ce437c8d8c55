"""What an orchestrator asked for, as tests compare it: the SDK's actions flattened into `Scheduled` calls with the
sequence numbers the host gave them, an `Episode`'s answer, and the keys tests write their expectations in
(`activity(name)`, `call_entity(name, operation)`, `timer(fire_at)`, ...). The harness (harness.py) makes them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from azure.durable_functions.models.actions.ActionType import ActionType

COMPOUND = (ActionType.WHEN_ANY, ActionType.WHEN_ALL)
ENTITY_ACTIONS = (ActionType.CALL_ENTITY, ActionType.SIGNAL_ENTITY)
ACTIVITIES = (ActionType.CALL_ACTIVITY, ActionType.CALL_ACTIVITY_WITH_RETRY)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def flatten(actions: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Atomic actions depth-first, the order in which the SDK and the extension number them."""
    for action in actions:
        if ActionType(action["actionType"]) in COMPOUND:
            yield from flatten(action["compoundActions"])
        else:
            yield action


def entity_name(scheduler_id: str) -> str:
    """`@name@key` -> name (the extension splits at the second '@')."""
    return scheduler_id[1 : scheduler_id.index("@", 1)]


@dataclass(frozen=True)
class Scheduled:
    """One atomic action the orchestrator asked for, with the sequence number the host gave it (None for an
    external event wait, which the SDK keys by name)."""

    id: int | None
    type: ActionType
    action: dict[str, Any]
    request_id: str | None = None  # entity calls: the id the answer is raised under

    @property
    def name(self) -> str:
        """The function, event or entity name."""
        if self.type in ENTITY_ACTIONS:
            return entity_name(self.action["instanceId"])
        if self.type is ActionType.WAIT_FOR_EXTERNAL_EVENT:
            return str(self.action["externalEventName"])
        return str(self.action.get("functionName", ""))

    @property
    def operation(self) -> str | None:
        return self.action.get("operation")

    @property
    def input(self) -> Any:
        """The action's input, decoded (actions carry it as JSON text)."""
        text = self.action.get("input")
        return None if text is None else json.loads(text)

    @property
    def fire_at(self) -> datetime:
        return parse_iso(self.action["fireAt"])

    @property
    def key(self) -> tuple[Any, ...]:
        """What tests compare: the type and name (entity: and operation; timer: when it fires)."""
        if self.type in ENTITY_ACTIONS:
            return (self.type, self.name, self.operation)
        if self.type is ActionType.CREATE_TIMER:
            return (self.type, self.fire_at)
        return (self.type, self.name)


def activity(name: str) -> tuple[Any, ...]:
    return (ActionType.CALL_ACTIVITY, name)


def activity_with_retry(name: str) -> tuple[Any, ...]:
    return (ActionType.CALL_ACTIVITY_WITH_RETRY, name)


def sub_orchestration(name: str) -> tuple[Any, ...]:
    return (ActionType.CALL_SUB_ORCHESTRATOR, name)


def call_entity(name: str, operation: str) -> tuple[Any, ...]:
    return (ActionType.CALL_ENTITY, name, operation)


def signal_entity(name: str, operation: str) -> tuple[Any, ...]:
    return (ActionType.SIGNAL_ENTITY, name, operation)


def timer(fire_at: datetime) -> tuple[Any, ...]:
    return (ActionType.CREATE_TIMER, fire_at)


def continue_as_new() -> tuple[Any, ...]:
    return (ActionType.CONTINUE_AS_NEW, "")


def wait_for(event: str) -> tuple[Any, ...]:
    return (ActionType.WAIT_FOR_EXTERNAL_EVENT, event)


@dataclass
class Episode:
    """The SDK's answer to one episode (its OrchestratorState JSON) and the actions that were new in it."""

    state: dict[str, Any]
    new: list[Scheduled]
    deferred: list[str] = field(default_factory=list)  # event names the SDK kept for a later waiter

    @property
    def keys(self) -> list[tuple[Any, ...]]:
        return [scheduled.key for scheduled in self.new]

    @property
    def actions(self) -> list[dict[str, Any]]:
        """Every action of the execution so far, flattened (compound actions opened)."""
        return list(flatten(self.state["actions"][0])) if self.state.get("actions") else []

    @property
    def is_done(self) -> bool:
        return bool(self.state.get("isDone"))

    @property
    def output(self) -> Any:
        return self.state.get("output")

    @property
    def error(self) -> str | None:
        return self.state.get("error")

    @property
    def custom_status(self) -> Any:
        return self.state.get("customStatus")

    @property
    def finished(self) -> bool:
        """Completed, failed or continued as new: the extension ends this generation."""
        return self.is_done or self.error is not None

    @property
    def continued_with(self) -> Any:
        """The input the orchestration continued as new with (decoded), or None when it did not."""
        actions = self.actions
        if not actions or ActionType(actions[-1]["actionType"]) is not ActionType.CONTINUE_AS_NEW:
            return None
        text = actions[-1].get("input")
        return None if text is None else json.loads(text)
