"""Under which event name a task waits for its container's reports: one choice, made where a job is submitted
(BATCH_CALLBACK_EVENTS), recorded in the job's input and in each task's, and read by the settings, the plan and the
task's checkpoints alike."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any


class CallbackEvents(StrEnum):
    """Recorded in the task's input (its first generation's, then each checkpoint's), so every replay of an instance
    waits under the names it always did: an input without the field is an instance started before per-attempt
    names, and keeps the shared one."""

    SHARED = "shared"  # `Callback` for every attempt; its containers get v2 tokens
    # `Callback.a<attempt>`; its containers get v3 tokens. A report of another attempt lands under another name, so
    # it can never take the place of this attempt's report, which lets the callback endpoint raise without a read.
    PER_ATTEMPT = "perAttempt"


CALLBACK_EVENTS_KEY = "callbackEvents"  # the input field: absent means SHARED


def callback_events_of(data: Mapping[str, Any]) -> CallbackEvents:
    return CallbackEvents(data.get(CALLBACK_EVENTS_KEY, CallbackEvents.SHARED))


def events_field(events: CallbackEvents) -> dict[str, Any]:
    """The input field for `events`: none for the shared name, so the inputs of such instances keep their shape."""
    return {} if events is CallbackEvents.SHARED else {CALLBACK_EVENTS_KEY: str(events)}
