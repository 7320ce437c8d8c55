"""Workers that run the app's functions in this process, for fast tests of devhost's engine.

`InProcessWorkers` implements the engine's `durable.workers.Workers` interface with the language worker's own
dispatch (`devhost.worker.Worker`): the app is imported here and every orchestrator episode, entity batch and
activity runs through the real Durable SDK, as in a worker process, only without the socket. There is one
"worker", so nothing can crash it apart from this process: `restart_holder` fails the timed-out invocation with
`WorkerExited`, as a restarted worker would. devhost itself always uses `devhost.workers.WorkerPool`.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from devhost.app import AppIndex, FunctionInfo, load_app
from devhost.durable.workers import Reply
from devhost.worker import Worker
from devhost.workers import FunctionFailed, WorkerExited

APP_MODULE = "function_app"  # what `load_app` imports (PYTHON_SCRIPT_FILE_NAME's default)


class _ReplyingWorker(Worker):
    """The language worker's dispatch, answering futures instead of writing frames."""

    def __init__(self, index: AppIndex, threads: int) -> None:
        # The Durable client binding points nowhere: the engine's tests start instances through the engine.
        super().__init__(index, "http://127.0.0.1:9", threads, "http://127.0.0.1:9/", "in-process")
        self.outstanding: dict[int, asyncio.Future[Reply]] = {}

    def reply(self, request_id: int, header: dict[str, Any], body: bytes = b"") -> None:
        future = self.outstanding.pop(request_id, None)
        if future is None or future.done():
            return
        if "error" in header:
            future.set_exception(FunctionFailed(header["error"]))
        else:
            future.set_result(({"id": request_id, **header}, body))


class InProcessWorkers:
    def __init__(self, app_dir: Path, index: AppIndex, threads: int = 4) -> None:
        self.app_dir = app_dir
        self.index = index
        self.worker = _ReplyingWorker(index, threads)
        self.next_id = 1

    @classmethod
    def load(cls, app_dir: Path, threads: int = 4) -> InProcessWorkers:
        """Import the app in `app_dir` (another app imported before under the same module name is set aside
        while it loads, so each test module can load its own). Raises AppLoadError."""
        earlier = sys.modules.pop(APP_MODULE, None)
        try:
            index = load_app(app_dir)
        finally:
            if earlier is not None:
                sys.modules[APP_MODULE] = earlier
            else:
                sys.modules.pop(APP_MODULE, None)
        return cls(app_dir, index, threads)

    def invoke(
        self, info: FunctionInfo, body: bytes = b"", affinity: str | None = None, **fields: Any
    ) -> asyncio.Future[Reply]:
        request_id, self.next_id = self.next_id, self.next_id + 1
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Reply] = loop.create_future()
        self.worker.outstanding[request_id] = future
        # Later, as a worker process would answer: the engine applies replies after its current step.
        loop.call_soon(self.worker.handle, {"id": request_id, "function": info.name, **fields}, body)
        return future

    def restart_holder(self, future: asyncio.Future[Reply]) -> None:
        future.add_done_callback(lambda done: done.cancelled() or done.exception())  # nobody awaits it now
        for request_id, pending in list(self.worker.outstanding.items()):
            if pending is future:
                del self.worker.outstanding[request_id]
                future.set_exception(WorkerExited("the in-process worker gave up on this invocation"))

    def close(self) -> None:
        self.worker.pool.shutdown(wait=False, cancel_futures=True)
