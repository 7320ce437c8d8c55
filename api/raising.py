"""Raise an external event from the API, telling a finished or purged instance apart from a failure.

The Durable extension's raise-event handler reads the instance first and answers 404 when it does not exist and
410 when it has completed, failed, been terminated or cancelled (azure-functions-durable-extension,
HttpApiHandler.HandleRaiseEventRequestAsync). The Python client turns both into a bare `Exception` whose message
is all that tells them apart (azure-functions-durable-python, DurableOrchestrationClient.raise_event), so the
messages it writes for them are matched here. Any other failure, including a message worded differently by a
future client, is settled by one read of the instance: a finished instance is finished whatever the wording, and
anything unclear (the host failing, an instance the read cannot see) stays an error, so the sender retries.
"""

from __future__ import annotations

import re
from typing import Any

import azure.durable_functions as df

from api.common import TERMINAL, runtime_of

# The Python client's messages for the handler's 410 and 404 (the instance id sits in the middle).
_FINISHED_MESSAGES = (
    re.compile(r"Instance with ID .* is gone: either completed or failed", re.DOTALL),
    re.compile(r"No instance with ID .* found\.", re.DOTALL),
)


def finished_answer(error: Exception) -> bool:
    """Whether the client's error is the host's 410 (finished) or 404 (no such instance)."""
    return any(message.fullmatch(str(error)) for message in _FINISHED_MESSAGES)


async def raise_unless_finished(client: df.DurableOrchestrationClient, instance: str, event: str, data: Any) -> bool:
    """Raise `event` to `instance`: True when raised, False when the instance has finished or no longer exists."""
    try:
        await client.raise_event(instance, event, data)
    except Exception as error:
        if finished_answer(error):
            return False
        if runtime_of(await client.get_status(instance)) in TERMINAL:
            return False
        raise
    return True
