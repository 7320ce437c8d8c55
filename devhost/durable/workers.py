"""What the engine needs from whatever runs the app's functions: the interface it is given.

`devhost.workers.WorkerPool` (language worker processes, as in Azure) implements it for devhost;
`devhost.inprocess.InProcessWorkers` (the app imported into this process) for the engine's own tests.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Protocol

from devhost.app import FunctionInfo

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
