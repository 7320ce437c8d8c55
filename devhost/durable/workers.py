"""What the engine needs from whatever runs the app's functions: the interface it is given, and what a worker's
reply to an orchestrator episode says (`read_reply`).

`devhost.workers.WorkerPool` (language worker processes, as in Azure) implements it for devhost;
`devhost.inprocess.InProcessWorkers` (the app imported into this process) for the engine's own tests.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, Protocol

from devhost.app import FunctionInfo
from devhost.durable import episode
from devhost.durable.vocabulary import OUT_OF_PROC_MARKER
from devhost.workers import FunctionFailed

Reply = tuple[dict[str, Any], bytes]  # a reply frame's header and body (`devhost.wire`)


class Workers(Protocol):
    app_dir: Path

    def invoke(
        self, info: FunctionInfo, body: bytes = b"", affinity: str | None = None, **fields: Any
    ) -> asyncio.Future[Reply]:
        """Run `info`; the future holds the reply, or fails with `FunctionFailed` or `WorkerExited`.

        `affinity` sends every invocation with the same value to the same worker (an instance's episodes, an
        entity's batches); `fields` go in the request's header (`session`, `request`)."""
        ...

    def restart_holder(self, future: asyncio.Future[Reply]) -> None:
        """Restart what runs the invocation behind `future` (the host does so after a function timeout)."""
        ...


def read_reply(reply: asyncio.Future[Reply]) -> tuple[episode.Reply | None, bool]:
    """A worker's answer to an episode, and whether it kept a session; None for a session miss.
    Raises WorkerExited when the worker died running it."""
    try:
        header, body = reply.result()
    except FunctionFailed as exc:
        return failed_reply(exc.type, exc.message), False
    if header.get("miss"):
        return None, False
    # `json`, not orjson: the episode's output and custom status are the user's values as the SDK wrote them,
    # which may hold integers beyond 64 bits (orjson reads them as floats) or NaN.
    return episode.Reply(json.loads(body)), bool(header.get("kept"))


def failed_reply(error_type: str, message: str) -> episode.Reply:
    """An episode the SDK failed: its state rides in the exception's message after a marker, when it has one."""
    if OUT_OF_PROC_MARKER not in message:
        return episode.Reply({}, f"{error_type}: {message}")
    text, _, data = message.partition(OUT_OF_PROC_MARKER)
    try:
        state = json.loads(data)
    except ValueError:
        state = {}
    return episode.Reply(state, state.get("error") or text)
