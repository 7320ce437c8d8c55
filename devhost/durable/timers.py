"""Durable timers: armed on the event loop, each firing handed to the engine as an arrival."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from devhost.durable.runtime import InstanceRuntime

# (instance id, timer id, execution id, fire time): what a fired timer tells the engine.
Fired = Callable[[str, int, str, float], None]


class Timers:
    def __init__(self, runtime: Callable[[str], InstanceRuntime], arrive: Callable[[Callable[[], None]], None],
                 fired: Fired) -> None:  # fmt: skip
        self.runtime = runtime
        self.arrive = arrive
        self.fired = fired

    def arm(self, instance_id: str, execution: str, timer_id: int, fire_at: float) -> None:
        """Fire at `fire_at` (at once when it is past: a timer due while devhost was down fires late).

        The handle is kept under (execution, timer id): timer ids restart at 0 in each execution, and the last
        episode before a continue-as-new arms its timers after the new execution's table was started, so a
        timer id alone would let the old timer's firing remove (and leave uncancellable) a new timer's handle.
        """
        handles = self.runtime(instance_id).timer_handles
        key = (execution, timer_id)

        def fire() -> None:
            handles.pop(key, None)
            self.arrive(lambda: self.fired(instance_id, timer_id, execution, fire_at))

        delay = max(0.0, fire_at - time.time())
        handles[key] = asyncio.get_running_loop().call_later(delay, fire)
