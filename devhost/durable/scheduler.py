"""Which instance or entity runs next, and the batches of steps that share one SQLite commit.

Keys are instance ids, or entity ids (`@name@key`). A key is ready when it has events or operations to run;
arrivals are finished activities, fired timers and workers' replies, applied at the start of the next batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger("devhost.durable")
BATCH_SECONDS = 0.02  # the longest the event loop is held by one batch of steps (one commit)


class Steps(Protocol):
    """What the scheduler runs: the engine's steps for a key, inside a transaction of the store."""

    def begin(self, key: str) -> None: ...

    def coalescing_window(self, key: str) -> float: ...

    def transaction(self) -> contextlib.AbstractContextManager[None]: ...

    def batch(self) -> contextlib.AbstractContextManager[None]: ...


class Scheduler:
    def __init__(self, steps: Steps) -> None:
        self.steps = steps
        self.ready: deque[str] = deque()
        self.ready_set: set[str] = set()
        self.ready_since: dict[str, float] = {}
        self.wakeup = asyncio.Event()
        self.arrivals: list[Callable[[], None]] = []
        self.in_flight: set[str] = set()  # instances and entities whose episode or batch a worker is running

    def mark_ready(self, key: str, first: bool = False) -> None:
        if key not in self.ready_set:
            self.ready_set.add(key)
            self.ready_since.setdefault(key, time.monotonic())
            if first:
                self.ready.appendleft(key)
            else:
                self.ready.append(key)
            self.wakeup.set()

    def arrive(self, arrival: Callable[[], None]) -> None:
        """Apply `arrival` (a reply, a result, a fired timer) at the start of the next batch."""
        self.arrivals.append(arrival)
        self.wakeup.set()

    async def work(self) -> None:
        while True:
            if not (self.ready or self.arrivals):
                self.wakeup.clear()
                await self.wakeup.wait()
                continue
            ran, wait = self.run_batch()
            await asyncio.sleep(0 if ran or wait is None else wait)

    def run_batch(self) -> tuple[int, float | None]:
        """Run ready steps for up to BATCH_SECONDS in one transaction (one commit for the lot).

        Returns how many steps ran and, when none could, how long until the first coalescing window ends.
        Timers and `call_http`'s built-in activity start after the commit: they need the event loop, which this
        synchronous batch holds until it has committed. An app activity is handed to its worker at once, as the
        Azure Storage backend queues an episode's messages before its checkpoint (`activities.Activities._send`);
        its result, like every reply, is applied by a later batch, after the commit.
        """
        deadline = time.monotonic() + BATCH_SECONDS
        ran, wait, deferred = 0, None, 0
        with self.steps.transaction(), self.steps.batch():
            arrivals, self.arrivals = self.arrivals, []
            for arrival in arrivals:
                self.run_step(arrival)
            while self.ready and deferred < len(self.ready) and time.monotonic() < deadline:
                key = self.ready.popleft()
                window = self.steps.coalescing_window(key)
                waited = time.monotonic() - self.ready_since.get(key, 0.0)
                if waited < window:
                    self.ready.append(key)  # let more events arrive; others go first
                    deferred += 1
                    wait = window - waited if wait is None else min(wait, window - waited)
                    continue
                deferred = 0
                self.ready_set.discard(key)
                self.ready_since.pop(key, None)
                self.run_step(functools.partial(self.steps.begin, key))
                ran += 1
        return ran, wait

    def run_step(self, step: Callable[[], None]) -> None:
        """One step in its own savepoint: a failing step undoes only its own writes."""
        try:
            with self.steps.transaction():
                step()
        except Exception:
            log.exception("internal error while running %s", step)
