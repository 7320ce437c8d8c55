"""Where orchestrator episodes run: inline on the event loop, or in worker processes.

An episode is a pure function of its context JSON (the SDK replays the history and returns the actions), so
episodes of different instances can run in parallel on other cores while the event loop keeps serving HTTP,
activities and the store. Workers are forked from the host after the app is indexed and before any thread or
event loop starts, so they hold the same indexed app and call the same handles.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

from devhost.app import AppIndex

# The forked workers' copy of the indexed app (a module attribute, because workers only get function arguments).
_shared: dict[str, AppIndex] = {}


class EpisodeFailed(Exception):
    """The orchestrator handle raised; `message` is its text (with the SDK's out-of-proc state)."""


def _run_in_worker(name: str, context: str) -> tuple[bool, str]:
    try:
        return True, str(_shared["index"].orchestrators[name].callable(context))
    except Exception as exc:  # the SDK reports orchestrator failures by raising; send the text back
        return False, str(exc) or type(exc).__name__


def _warm(_: int) -> int:
    return os.getpid()


class EpisodeRunner:
    """Runs `handle(context)` for an orchestrator; inline unless worker processes were started."""

    def __init__(self, index: AppIndex, workers: int = 0) -> None:
        self.index = index
        self.workers = workers
        self.pool: ProcessPoolExecutor | None = None
        if workers > 0:
            _shared["index"] = index
            self.pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
            # Fork every worker now, while this process has no threads and no event loop.
            list(self.pool.map(_warm, range(workers * 4)))

    @property
    def parallel(self) -> int:
        return max(1, self.workers)

    async def run(self, name: str, context: str) -> str:
        if self.pool is None:
            return str(self.index.orchestrators[name].callable(context))
        ok, text = await asyncio.get_running_loop().run_in_executor(self.pool, _run_in_worker, name, context)
        if not ok:
            raise EpisodeFailed(text)
        return text

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
