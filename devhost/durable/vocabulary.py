"""The Durable protocol's vocabulary as devhost speaks it: event shapes, statuses, timestamps and errors.

History events are the DTFx shapes of `shared/reference/durable-functions-protocol.md` §2.2, typed by the SDK's
own `HistoryEventType`; actions are the SDK's `ActionType`. Nothing here holds state.
"""

from __future__ import annotations

import functools
import json
import time
from datetime import UTC, datetime
from typing import Any

from azure.durable_functions.models.actions import ActionType
from azure.durable_functions.models.history import HistoryEventType

from devhost import payloadlimits

RUNNING_STATES = frozenset({"Pending", "Running", "Suspended", "ContinuedAsNew"})
TERMINAL_STATES = frozenset({"Completed", "Failed", "Terminated", "Canceled"})
# The SDK's answer to a failed episode carries its state after this marker in the exception's message.
OUT_OF_PROC_MARKER = "\n\n$OutOfProcData$:"
# ExecutionCompleted's OrchestrationStatus (DTFx `OrchestrationStatus`): the values the SDK reads back.
STATUS_COMPLETED, STATUS_FAILED = 1, 3

# Short names for the event types the engine writes and reads (`shared/reference` §2.2 spells them out).
EXECUTION_STARTED = HistoryEventType.EXECUTION_STARTED
EXECUTION_COMPLETED = HistoryEventType.EXECUTION_COMPLETED
EXECUTION_TERMINATED = HistoryEventType.EXECUTION_TERMINATED
TASK_SCHEDULED = HistoryEventType.TASK_SCHEDULED
TASK_COMPLETED = HistoryEventType.TASK_COMPLETED
TASK_FAILED = HistoryEventType.TASK_FAILED
SUB_CREATED = HistoryEventType.SUB_ORCHESTRATION_INSTANCE_CREATED
SUB_COMPLETED = HistoryEventType.SUB_ORCHESTRATION_INSTANCE_COMPLETED
SUB_FAILED = HistoryEventType.SUB_ORCHESTRATION_INSTANCE_FAILED
TIMER_CREATED = HistoryEventType.TIMER_CREATED
TIMER_FIRED = HistoryEventType.TIMER_FIRED
ORCHESTRATOR_STARTED = HistoryEventType.ORCHESTRATOR_STARTED
ORCHESTRATOR_COMPLETED = HistoryEventType.ORCHESTRATOR_COMPLETED
EVENT_SENT = HistoryEventType.EVENT_SENT
EVENT_RAISED = HistoryEventType.EVENT_RAISED


def iso(moment: float | None = None) -> str:
    """`2026-11-25T01:57:46.123456Z`: always microseconds and Z (the shape `devhost.fastpaths` reads fast)."""
    moment = time.time() if moment is None else moment
    seconds = int(moment // 1)
    return f"{_iso_seconds(seconds)}.{int((moment - seconds) * 1e6):06d}Z"


@functools.lru_cache(maxsize=64)
def _iso_seconds(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def parse_iso(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def event(kind: HistoryEventType, event_id: int = -1, *, at: float | None = None, **fields: Any) -> dict[str, Any]:
    """A history event stamped `at` (now when not given). The type is stored as the plain number the SDK reads,
    and `IsPlayed` comes third, which `records.played_text` relies on."""
    return {"EventType": int(kind), "EventId": event_id, "IsPlayed": False, "Timestamp": iso(at), **fields}


class DurableError(Exception):
    """A request that cannot be served (unknown function, bad id, wrong state), with the HTTP status it gets."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class FunctionTimeout(Exception):
    """The host's `FunctionTimeoutException`: the function ran past host.json's functionTimeout."""


class PayloadTooLarge(Exception):
    """A payload over the backend's limit (`devhost.payloadlimits`)."""


def timeout_message(seconds: float | None, function: str) -> str:
    """The Functions host's message, with the timeout as a .NET TimeSpan (`hh:mm:ss`)."""
    whole = int(seconds or 0)
    span = f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"
    return f"Timeout value of {span} was exceeded by function: Functions.{function}"


def instance_id_problem(instance_id: str) -> str | None:
    """Why the extension refuses an instance id (`HttpApiHandler`), if it does."""
    if (
        instance_id.startswith("@")
        or any(c in instance_id for c in "/\\?#")
        or len(instance_id) > 256
        or any(ord(c) < 32 for c in instance_id)
    ):
        return f"Instance ID '{instance_id[:80]}' contains invalid characters or is too long."
    return None


def unknown_orchestrator(name: str, known: list[str]) -> DurableError:
    return DurableError(
        400,
        f"The function '{name}' doesn't exist, is disabled, or is not an orchestrator function. "
        f"Additional info: The following are the known orchestrator functions: {', '.join(sorted(known))}.",
    )


def unknown_entity(name: str) -> DurableError:
    return DurableError(400, f"The function '{name}' doesn't exist, is disabled, or is not an entity function.")


def payload_text(value: Any) -> str | None:
    """An action's or event's payload as the JSON text the backend stores (the SDK sends most as text already)."""
    return value if value is None or isinstance(value, str) else json.dumps(value)


def describe_action(action: dict[str, Any]) -> str:
    kind = action.get("actionType")
    name = action.get("functionName") or action.get("operation") or ""
    label = ActionType(kind).name.lower() if kind in ActionType._value2member_map_ else f"action {kind}"
    return f"{label} {name}".strip()


def is_continue_as_new(actions: list[dict[str, Any]]) -> bool:
    return bool(actions) and actions[-1].get("actionType") == ActionType.CONTINUE_AS_NEW


def end_payload_error(actions: list[dict[str, Any]], state: dict[str, Any]) -> str | None:
    """Why the payload an episode ends with (its output, or the next execution's input) is refused, if it is."""
    if is_continue_as_new(actions):
        return payloadlimits.payload_error("continue-as-new input", payload_text(actions[-1].get("input")))
    return payloadlimits.payload_error("orchestration output", json.dumps(state.get("output")))


def flatten(actions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The leaves of an action list in order: what gets a sequence number (compounds get none)."""
    flat: list[dict[str, Any]] = []
    for action in actions:
        if action.get("actionType") in {ActionType.WHEN_ANY, ActionType.WHEN_ALL}:
            flat.extend(flatten(action.get("compoundActions") or []))
        else:
            flat.append(action)
    return flat
