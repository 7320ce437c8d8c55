"""Orchestration sessions: a worker keeps an orchestration's replayed state between its episodes.

The SDK replays an orchestration's whole history on every episode, so a task orchestration that runs eight
episodes pays for its early events eight times, and decoding the history is a tenth of a worker's CPU.
Durable Functions calls keeping that state in memory *extended sessions* (a host.json setting of the .NET
in-process model; Azure's Python worker has no such thing). devhost does it for the Python SDK: after an
episode the worker keeps the SDK's executor, its context and the suspended orchestrator generator; the next
episode's context then carries only the events stored since (`past` says how many the worker already holds),
and the worker feeds them to the same executor loop the SDK runs over a whole history
(`TaskOrchestrationExecutor.process_event`), so the result is what a full replay returns.

What keeps that true:
- An episode's events are always the stored history's next ones, in order: the host sends a tail only when
  the worker acknowledged the episode that ends where the tail begins, for the same execution, and the
  worker answers `miss` (the host then sends the whole history) when its session is not exactly there: it
  was evicted, the worker is a replacement, an episode failed, the instance was reset.
- The replay flags match the SDK's: events before the last `OrchestratorStarted` count as replayed.
- `verify` mode (`DEVHOST_ORCHESTRATION_SESSIONS=verify`, what devhost's own tests run) also replays the
  whole history from scratch on every episode and fails the episode if the two answers differ.

Like Azure's extended sessions, a session does not replay user code again, so an orchestrator that is not
deterministic is not caught by replaying it; `DEVHOST_ORCHESTRATION_SESSIONS=0` replays every episode.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from azure.durable_functions.models.DurableOrchestrationContext import DurableOrchestrationContext
from azure.durable_functions.models.history.HistoryEvent import HistoryEvent
from azure.durable_functions.models.history.HistoryEventType import HistoryEventType
from azure.durable_functions.models.TaskOrchestrationExecutor import TaskOrchestrationExecutor

from devhost.fastpaths import context_loads

SETTING = "DEVHOST_ORCHESTRATION_SESSIONS"
KEPT_SETTING = "DEVHOST_SESSIONS_KEPT"
DEFAULT_KEPT = 5_000  # a task orchestration's session is tens of kB: this bounds a worker to ~100-200 MB
MODES = ("1", "0", "verify")


def mode(environ: Mapping[str, str] | None = None) -> str:
    """ "1" (on, the default), "0" (off: every episode replays the whole history) or "verify"."""
    values = os.environ if environ is None else environ
    value = values.get(SETTING, "1").strip().lower() or "1"
    if value not in MODES:
        raise ValueError(f"{SETTING} must be 1, 0 or verify, not {value!r}")
    return value


def kept(environ: Mapping[str, str] | None = None) -> int:
    """How many sessions a worker keeps (`DEVHOST_SESSIONS_KEPT`, a whole number of at least 1)."""
    values = os.environ if environ is None else environ
    text = values.get(KEPT_SETTING, "").strip()
    if not text:
        return DEFAULT_KEPT
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{KEPT_SETTING} must be a whole number of at least 1, not {text!r}")
    return int(text)


class SessionMiss(Exception):
    """The worker holds no session that ends where the episode's events begin: send the whole history."""


class SessionDiverged(Exception):
    """verify mode: the session's answer differs from a full replay's (a devhost bug: please report it)."""


@dataclass
class Session:
    execution: str
    consumed: int  # history events the executor has processed
    executor: TaskOrchestrationExecutor
    context: DurableOrchestrationContext


def replay(handle: Any, fields: dict[str, Any]) -> tuple[str, TaskOrchestrationExecutor, DurableOrchestrationContext]:
    """What the SDK's orchestration handle does with a whole context, keeping its executor and context."""
    context = DurableOrchestrationContext(**fields)
    # As the SDK's handle does: the decorator's declared input type lets `get_input` decode typed inputs.
    context._input_expected_type = getattr(handle, "_df_input_type", None)
    executor = TaskOrchestrationExecutor()
    state = executor.execute(context, context.histories, handle.orchestrator_function)
    return state, executor, context


def resume(session: Session, events: list[dict[str, Any]]) -> str:
    """Go on from where the session stopped with the history's next `events`, as the SDK's loop would."""
    new = [HistoryEvent(**item) for item in events]
    executor, context = session.executor, session.context
    context.histories.extend(new)
    # The SDK counts every event before the last OrchestratorStarted as replayed (`_find_new_events_start_index`).
    starts = [i for i, item in enumerate(new) if item.event_type == HistoryEventType.ORCHESTRATOR_STARTED]
    boundary = starts[-1] if starts else 0
    executor._is_processing_new_events = False
    for index, item in enumerate(new):
        if index >= boundary:
            executor._is_processing_new_events = True
        executor.process_event(item)
        if executor.has_execution_completed:
            break
    session.consumed += len(new)
    state: str = executor.get_orchestrator_state_str()
    return state


class Sessions:
    """One worker's sessions, least recently used evicted first."""

    def __init__(self, kept: int = DEFAULT_KEPT, verify: bool = False) -> None:
        self.kept = kept
        self.verify = verify
        self.sessions: OrderedDict[str, Session] = OrderedDict()
        self.resumed = 0
        self.replayed = 0

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Sessions | None:
        """The sessions the settings ask for, or None when they are off."""
        values = os.environ if environ is None else environ
        chosen = mode(values)
        if chosen == "0":
            return None
        return cls(kept(values), verify=chosen == "verify")

    def run(self, handle: Any, instance_id: str, execution: str, past: int, body: str) -> tuple[str, bool]:
        """One episode of `handle` (the SDK's orchestration handle): the SDK's answer (or what it raises), and
        whether the session is kept for the next episode (not when the orchestration ended or failed).

        `past` is how many history events precede the body's (0: the body holds the whole history; in verify
        mode it always does). Raises SessionMiss when the episode needs the whole history.
        """
        if getattr(handle, "orchestrator_function", None) is None:  # not the SDK's generator orchestrator
            if past and not self.verify:
                raise SessionMiss(instance_id)
            return str(handle(body)), False
        session = self.sessions.pop(instance_id, None)  # kept again below only if the episode succeeds
        usable = session is not None and session.execution == execution and session.consumed == past
        if past and not usable and not self.verify:
            raise SessionMiss(instance_id)  # before reading the body: the host sends it again, whole
        fields: dict[str, Any] = context_loads(body)
        if past and usable and session is not None:
            events = fields["history"][past:] if self.verify else fields["history"]
            self.resumed += 1
            try:
                state = resume(session, events)
            except Exception as exc:
                if self.verify:
                    self.check(handle, fields, f"raises {exc}")
                raise
            if self.verify:
                self.check(handle, fields, state)
        else:
            state, executor, context = replay(handle, fields)
            session = Session(execution, len(context.histories), executor, context)
            self.replayed += 1
        if session.executor.has_execution_completed:
            return state, False
        self.sessions[instance_id] = session
        while len(self.sessions) > self.kept:
            self.sessions.popitem(last=False)
        return state, True

    @staticmethod
    def check(handle: Any, fields: dict[str, Any], state: str) -> None:
        try:
            expected = replay(handle, fields)[0]
        except Exception as exc:
            expected = f"raises {exc}"
        if expected != state:
            raise SessionDiverged(f"the session answered {state[:2000]}\nbut a full replay answers {expected[:2000]}")
