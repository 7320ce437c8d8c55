"""When an Azure Storage task hub's poller sees a queue message: devhost's `DEVHOST_QUEUE_LATENCY` mode.

The Azure Storage backend of Durable Functions (DTFx, `src/DurableTask.AzureStorage`) has no push: each control
queue (one per partition, chosen by an FNV-1a hash of the instance id) and the work-item queue is polled by a loop
(`ControlQueue.GetMessagesAsync`, `WorkItemQueue.GetMessageAsync`). When a poll comes back empty the loop waits
(`BackoffPollingHelper`): 50 ms at first, then 50 ms plus a random 0.8-1.2 times 50 ms * 2^(n-1) after the n-th
empty wait in a row, up to `maxQueuePollingInterval` (host.json, default 30 s), where it stays. A poll that finds
messages, or a message added through the same process's queue object (`TaskHubQueue.AddMessageAsync` calls
`Reset`), wakes the loop and starts the back-off again from 50 ms.

So a message is seen at once when the process that sends it also polls the target queue: the extension gives
clients the host's own orchestration service for that reason (`AzureStorageDurabilityProviderFactory`), an
orchestration's messages to itself or to any instance of its own partition are always local, and activities are
too (every app instance polls the one work-item queue, the sender's poller included). A message waits for the
poller's back-off when another app instance holds the target partition's lease: a scaled-out app whose queues
have been idle. `idle` mode assumes exactly that for every message that crosses partitions and for every client
message. Durable timers wait too, on any app: their message is added with a visibility delay when scheduled, so
the wake-up happens then, and the fire time is noticed by the first poll after it. Nothing is delayed in the
default `off` mode.

This module holds the model as plain functions of time (`QueuePoller`) and the bookkeeping that holds a message
back until its queue is polled (`QueueLatency`); the engine only asks it whether a delivery is seen now.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from devhost.app import _host_json

SETTING = "DEVHOST_QUEUE_LATENCY"
MAX_SETTING = "DEVHOST_QUEUE_MAX_POLL_SECONDS"
MIN_INTERVAL = 0.05  # TaskHubQueue's minimum polling delay (50 ms), also the floor of the maximum
RANDOMIZATION = 0.2  # RandomizedExponentialBackoffStrategy.RandomizationFactor
DEFAULT_MAX_INTERVAL = 30.0  # AzureStorageOptions.MaxQueuePollingInterval
DEFAULT_PARTITIONS = 4  # AzureStorageOptions.PartitionCount
MAX_PARTITIONS = 16
CLIENT = ""  # the sender of client operations (HTTP API, durable client binding)
SCHEDULED = "\x00scheduled"  # a message its sender added invisible until a set time (a durable timer)
FNV_OFFSET, FNV_PRIME = 2166136261, 16777619

# .NET's TimeSpan.Parse shapes host.json uses: "[d.]hh:mm[:ss[.fffffff]]", or a bare number of days.
TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:\.(\d{1,7}))?)?$")


class Latency(StrEnum):
    OFF = "off"  # every message is seen at once (one app instance holds every partition)
    IDLE = "idle"  # client messages, messages crossing partitions and fired timers wait for an idle poller


def partition_of(instance_id: str, partitions: int) -> int:
    """The control queue an instance's messages go to: FNV-1a of its id's UTF-8 bytes, modulo the count."""
    value = FNV_OFFSET
    for byte in instance_id.encode():
        value = ((value ^ byte) * FNV_PRIME) & 0xFFFFFFFF
    return value % partitions


def parse_timespan(text: str) -> float:
    """Seconds in a host.json TimeSpan such as "00:00:30"; ValueError naming the accepted shape otherwise."""
    text = text.strip()
    if text.isdigit():
        return int(text) * 86400.0
    match = TIMESPAN.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a TimeSpan: write it as hh:mm:ss, e.g. 00:00:30")
    days, hours, minutes, seconds, fraction = match.groups()
    if int(hours) > 23 or int(minutes) > 59 or int(seconds or 0) > 59:
        raise ValueError(f"{text!r} is not a TimeSpan: hours go to 23, minutes and seconds to 59")
    return (
        int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + int(seconds or 0)
        + float(f"0.{fraction or 0}")
    )  # fmt: skip


@dataclass
class Backoff:
    """DTFx's randomized exponential back-off: the wait before the next poll after an empty one."""

    maximum: float
    rng: random.Random
    minimum: float = MIN_INTERVAL
    current: float = 0.0  # a new loop's first wait is zero
    exponent: int = 0

    def update(self, signaled: bool) -> None:
        """After a wait: back to the minimum when the poller was woken, else the next longer wait."""
        if signaled:
            self.current, self.exponent = self.minimum, 1
            return
        if self.current == self.maximum:
            return
        interval = self.minimum
        if self.exponent > 0:
            factor = self.rng.uniform(1 - RANDOMIZATION, 1 + RANDOMIZATION)
            interval += factor * 2 ** (self.exponent - 1) * self.minimum
        if interval < self.maximum:
            self.current, self.exponent = interval, self.exponent + 1
        else:
            self.current = self.maximum


@dataclass
class QueuePoller:
    """One queue's dequeue loop, as times: `next_poll` is when it next asks the queue for messages."""

    backoff: Backoff
    next_poll: float

    def woken(self, now: float) -> None:
        """Messages found at `now`, or a message added by the polling process: the loop polls again at once and
        its next empty poll waits the minimum."""
        self.backoff.update(signaled=True)
        self.next_poll = now

    def seen_at(self, sent: float) -> float:
        """When a message added at `sent` by another process is dequeued: the loop's first poll at or after it.
        That poll finds it, which wakes the loop (so later messages see the reset back-off)."""
        while self.next_poll < sent:
            if self.backoff.current == self.backoff.maximum:
                # At the maximum every wait is the same: jump over the whole idle stretch at once.
                skipped = -(-(sent - self.next_poll) // self.backoff.maximum)
                self.next_poll += skipped * self.backoff.maximum
                break
            self.next_poll += self.backoff.current
            self.backoff.update(signaled=False)
        seen = self.next_poll
        self.woken(seen)
        return seen


@dataclass(frozen=True)
class Config:
    mode: Latency
    max_interval: float
    partitions: int


def _storage_provider(host_json: Mapping[str, Any]) -> dict[str, Any]:
    # The extension binds host.json options case-insensitively (.NET configuration).
    def child(node: Any, name: str) -> Any:
        if not isinstance(node, dict):
            return {}
        return next((value for key, value in node.items() if str(key).lower() == name.lower()), {})

    provider = child(child(child(host_json, "extensions"), "durableTask"), "storageProvider")
    return {str(key).lower(): value for key, value in provider.items()} if isinstance(provider, dict) else {}


def read_config(env: Mapping[str, str], host_json: Mapping[str, Any]) -> Config:
    """The mode from the environment; the maximum interval from `DEVHOST_QUEUE_MAX_POLL_SECONDS`, else host.json's
    `maxQueuePollingInterval`, else 30 s; the partition count from host.json (default 4)."""
    raw = env.get(SETTING, "").strip().lower() or Latency.OFF.value
    if raw == "0":
        raw = Latency.OFF.value
    try:
        mode = Latency(raw)
    except ValueError:
        raise ValueError(f"{SETTING}={raw!r} is invalid: use off or idle") from None
    provider = _storage_provider(host_json)
    override = env.get(MAX_SETTING, "").strip()
    if override:
        try:
            maximum = float(override)
        except ValueError:
            maximum = -1.0
        if not 0 < maximum <= 86400:
            raise ValueError(f"{MAX_SETTING}={override!r} is invalid: set a number of seconds above 0")
    elif "maxqueuepollinginterval" in provider:
        try:
            maximum = parse_timespan(str(provider["maxqueuepollinginterval"]))
        except ValueError as error:
            raise ValueError(f"host.json storageProvider.maxQueuePollingInterval: {error}") from None
        if maximum <= 0:
            raise ValueError("host.json storageProvider.maxQueuePollingInterval must be above zero")
    else:
        maximum = DEFAULT_MAX_INTERVAL
    partitions = provider.get("partitioncount", DEFAULT_PARTITIONS)
    if isinstance(partitions, bool) or not isinstance(partitions, int) or not 1 <= partitions <= MAX_PARTITIONS:
        raise ValueError(f"host.json storageProvider.partitionCount={partitions!r}: use an integer from 1 to 16")
    return Config(mode, max(maximum, MIN_INTERVAL), partitions)


def config_for(app_dir: Path) -> Config:
    return read_config(os.environ, _host_json(app_dir))


@dataclass
class QueueLatency:
    """Holds each delivery back until its queue's poller would see it; `release` is called with the key then.

    The message itself is already stored by the engine; only the start of its processing is delayed, so a
    restart (whose pollers start at once, as a restarted Azure host's do) processes it straight away.
    """

    config: Config
    release: Callable[[str], None]
    rng: random.Random = field(default_factory=random.Random)
    now: Callable[[], float] = time.monotonic  # the clock of asyncio's loop.time()
    call_later: Callable[[float, Callable[[], None]], Any] = field(
        default=lambda delay, callback: asyncio.get_running_loop().call_later(delay, callback)
    )
    pollers: dict[int, QueuePoller] = field(default_factory=dict)
    waiting: dict[int, dict[str, float]] = field(default_factory=dict)  # by partition: key -> when seen
    timers: dict[int, Any] = field(default_factory=dict)  # by partition: the handle of its next due poll

    def __post_init__(self) -> None:
        # Every partition's loop starts polling when the host starts, and backs off from then on.
        started = self.now()
        for partition in range(self.config.partitions):
            self.pollers[partition] = QueuePoller(Backoff(self.config.max_interval, self.rng), started)

    def arrive(self, key: str, sender: str | None) -> bool:
        """A message for `key` (instance or entity id) from `sender`: an instance or entity id, None for the
        target's own partition (an activity result), CLIENT for a client operation, SCHEDULED for a timer that
        has just become visible (`TaskHubQueue.GetVisibilityDelay`: it was added long ago, so nothing wakes the
        poller now). True when it is seen now."""
        if self.config.mode is Latency.OFF:
            return True
        partition = partition_of(key, self.config.partitions)
        now = self.now()
        poller = self.pollers[partition]
        remote = sender is not None and (
            sender in {CLIENT, SCHEDULED} or partition_of(sender, self.config.partitions) != partition
        )
        if not remote:
            poller.woken(now)
            self.poll(partition, everything=True)  # the woken poll also dequeues whatever was waiting
            return True
        seen = poller.seen_at(now)
        if seen <= now:
            return True
        queue = self.waiting.setdefault(partition, {})
        queue[key] = min(seen, queue.get(key, seen))
        self.schedule(partition)
        return False

    def schedule(self, partition: int) -> None:
        self.cancel_timer(partition)
        delay = max(0.0, min(self.waiting[partition].values()) - self.now())
        self.timers[partition] = self.call_later(delay, lambda: self.poll(partition))

    def cancel_timer(self, partition: int) -> None:
        handle = self.timers.pop(partition, None)
        if handle is not None:
            handle.cancel()

    def poll(self, partition: int, everything: bool = False) -> None:
        """The poll of a partition: release every message it sees (all waiting ones when the loop was woken)."""
        self.cancel_timer(partition)
        queue = self.waiting.get(partition)
        if not queue:
            return
        now = self.now()
        seen = [key for key, due in queue.items() if everything or due <= now]
        for key in seen:
            del queue[key]
        if queue:
            self.schedule(partition)
        for key in seen:
            self.release(key)
