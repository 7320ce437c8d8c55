"""External events of one name for the task orchestrator: one reusable waiter, and the payloads already handled.

Waiters are created once and reused across `task_any` calls: the Python SDK hands an event to the most recently
created waiter of that name, so an abandoned waiter would swallow a later event. And an event that arrives while
no waiter of its name is open is kept by the SDK and handed to *every* later waiter of that name, never dropped
(Azure/azure-functions-durable-python#507): a repeated callback (a report sent twice) or a second wake-up would
complete each new waiter at once, forever. So a payload already handled is recognised as "nothing new", and the
orchestrator stops listening for that name until its next timer; a newer event replaces the kept one and is read
then, and status polling stays the backstop. The handled payloads are kept as short digests, so a continued
generation can carry the latest ones (`acibatch.checkpoint`).

A task's callbacks come under one name for every attempt (`Callback`), or, for a task started with per-attempt
names (`acibatch.checkpoint.CallbackEvents`), under its attempt's own (`Callback.a<attempt>`, `callback_event`):
then an older attempt's report, kept by the SDK under its own name, is never handed to this attempt's waiter.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import azure.durable_functions as df

from acibatch import durable_names as names
from acibatch.callbackevents import CallbackEvents
from acibatch.callbacks import attempt_event, decode_event_payload
from acibatch.checkpoint import HANDLED_KEPT
from acibatch.tokens import TokenFormat


def callback_event(events: CallbackEvents, attempt: int) -> str:
    """The event name the attempt's reports are raised under (the endpoint names it from a v3 token's attempt)."""
    return names.EVENT_CALLBACK if events is CallbackEvents.SHARED else attempt_event(attempt)


def callback_token_format(events: CallbackEvents) -> TokenFormat:
    """The token the attempt's containers get: v3 (raised with no read) only where the names carry the attempt."""
    return TokenFormat.V2 if events is CallbackEvents.SHARED else TokenFormat.V3


def digest(payload: Any) -> str:
    text = payload if isinstance(payload, str) else json.dumps(payload, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class Events:
    def __init__(self, context: df.DurableOrchestrationContext, name: str, handled: tuple[str, ...] = ()) -> None:
        self.context = context
        self.name = name
        self.waiter: Any = None
        self.handled: list[str] = list(handled)
        self.muted = False  # after a repeat: not listening until `listen_again` (the caller's next timer)
        # Whether a waiter was raced since `not_raced()`: until then an event may sit in the SDK, unseen here.
        self.raced = False

    def waiters(self) -> list[Any]:
        """The waiter to race (none while muted), created on first use and kept until it wins."""
        if self.muted:
            return []
        if self.waiter is None:
            self.waiter = self.context.wait_for_external_event(self.name)
        self.raced = True
        return [self.waiter]

    def rename(self, name: str) -> None:
        """Listen under `name` from now on (a new attempt's): the old name's waiter, and a repeat the SDK keeps for
        it, belong to the attempt that has ended. The same name changes nothing."""
        if name != self.name:
            self.name, self.waiter, self.muted = name, None, False

    def not_raced(self) -> None:
        """Events may come from now on (a group was created) and none has been raced for yet."""
        self.raced = False

    def take(self, winner: Any) -> Any:
        """The payload of a waiter that won, or None when it is one handled already (then mute until a timer)."""
        self.waiter = None
        key = digest(winner.result)
        if key in self.handled:
            self.muted = True
            return None
        self.handled = [*self.handled, key][-HANDLED_KEPT:]
        return decode_event_payload(winner.result)

    def listen_again(self) -> None:
        """Un-mute: race for this name again (after the caller's timer, or to read a report the SDK may keep)."""
        self.muted = False

    def arrived(self) -> Any:
        """The open waiter if an event completed it while the orchestrator waited on something else, else None."""
        return self.waiter if self.waiter is not None and self.waiter.is_completed else None
