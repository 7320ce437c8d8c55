"""ARM write admission: when the next container group create or delete may be sent within ACI's rate limits.

ACI limits container group creates per subscription and region over more than one window at once (by default
100 per 5 minutes and 300 per hour; see the README's limits). Sending over the limit gets 429s, and a task that
keeps getting them would fail; so creates are admitted here instead, as reserved slots: the capacity entity gives
every lease it grants the earliest instant at which one more create keeps every window within its limit, and the
task waits until then. A task that backs off reserves its slot for later without holding back the others; a 429
from ARM (its `Retry-After`) pushes every later slot past that instant.

Pure: times are passed in, milliseconds since the epoch, and nothing here reads a clock.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right, insort
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

DEFAULT_CREATE_LIMITS = "100/300,300/3600"
DEFAULT_DELETE_LIMITS = "100/300,300/3600"
_LIMIT = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class WindowLimit:
    count: int  # at most this many creates ...
    seconds: int  # ... in any window of this length

    def describe(self) -> str:
        return f"{self.count} creates per {self.seconds:g} s"


def parse_limits(text: str) -> tuple[WindowLimit, ...]:
    """`"100/300,300/3600"` -> limits; raises ValueError with what to fix."""
    limits = []
    for part in filter(None, (piece.strip() for piece in text.split(","))):
        match = _LIMIT.match(part)
        if match is None:
            raise ValueError(f"'{part}' is not COUNT/SECONDS (for example 100/300)")
        count, seconds = int(match[1]), int(match[2])
        if count < 1 or seconds < 1:
            raise ValueError(f"'{part}': count and seconds must be at least 1")
        limits.append(WindowLimit(count, seconds))
    if not limits:
        raise ValueError("give at least one COUNT/SECONDS window")
    return tuple(limits)


def format_limits(limits: Sequence[WindowLimit]) -> str:
    return ",".join(f"{limit.count}/{limit.seconds}" for limit in limits)


def next_slot(slots: Sequence[int], limits: Sequence[WindowLimit], now_ms: int, not_before_ms: int = 0) -> int:
    """The earliest instant (ms), from `max(now_ms, not_before_ms)`, at which one more create keeps every window
    within its limit, given the reserved `slots` (ascending). A slot reserved for later (a task backing off) does
    not hold back creates before it: only the windows that would hold the new instant count."""
    at = max(now_ms, not_before_ms)
    if not slots or at >= slots[-1]:
        return _after_all(slots, limits, at)
    if _fits(slots, limits, at):
        return at
    # Whether an instant fits changes only where a create enters or leaves one of its windows.
    lengths = {limit.seconds * 1000 for limit in limits}
    candidates = sorted({slot + 1 for slot in slots} | {slot + length for slot in slots for length in lengths})
    for candidate in candidates[bisect_right(candidates, at) :]:
        if _fits(slots, limits, candidate):
            return candidate
    return _after_all(slots, limits, max(at, slots[-1]))


def _after_all(slots: Sequence[int], limits: Sequence[WindowLimit], at: int) -> int:
    """The earliest instant from `at`, not before any reserved slot, that fits: only windows ending there count."""
    moved = True
    while moved:
        moved = False
        for limit in limits:
            window_ms = limit.seconds * 1000
            inside = slots[bisect_right(slots, at - window_ms) :]
            if len(inside) >= limit.count:
                # Wait until enough of the window's creates have left it for one more to fit.
                at = inside[len(inside) - limit.count] + window_ms
                moved = True
    return at


def _fits(slots: Sequence[int], limits: Sequence[WindowLimit], at: int) -> bool:
    """Whether a create at `at` keeps every window within its limit. A window of W holds at most N creates
    exactly when any N + 1 consecutive creates span at least W; adding `at` changes only the runs through it."""
    for limit in limits:
        window_ms, count = limit.seconds * 1000, limit.count
        low = bisect_right(slots, at - window_ms)
        near = list(slots[low : bisect_left(slots, at + window_ms)])
        index = bisect_right(near, at)
        near.insert(index, at)
        for first in range(max(0, index - count), min(index, len(near) - 1 - count) + 1):
            if near[first + count] - near[first] < window_ms:
                return False
    return True


def prune(slots: Sequence[int], limits: Sequence[WindowLimit], now_ms: int) -> list[int]:
    """The slots that can still matter: those inside the longest window that ends now (or later)."""
    longest_ms = max(limit.seconds for limit in limits) * 1000
    return [slot for slot in slots if slot > now_ms - longest_ms]


def slot_reason(slot_ms: int, now_ms: int, limits: Sequence[WindowLimit], throttled_until_ms: int) -> str | None:
    """Why a create waits until `slot_ms`, in words for the task's pendingReason (None when it need not wait)."""
    if slot_ms <= now_ms:
        return None
    seconds = (slot_ms - now_ms) / 1000
    if throttled_until_ms >= slot_ms:
        return f"create rate: ARM asked to retry creates later; next create in {seconds:.0f} s"
    windows = ", ".join(limit.describe() for limit in limits)
    return f"create rate: ACI allows {windows}; next create in {seconds:.0f} s"


@dataclass
class WriteAdmission:
    """One kind of write (creates or deletes): its windows, the slots reserved in them, and ARM's last throttle."""

    limits: tuple[WindowLimit, ...]
    slots: list[int] = field(default_factory=list)  # reserved instants (ms), ascending
    throttled_until: int = 0  # ms: ARM's last Retry-After for this kind; no slot before it

    def reserve(self, now: float, not_before: float = 0.0, throttled: bool = False) -> float:
        """Reserve the earliest slot (epoch seconds) from `max(now, not_before)`; mutates (call on a copy).
        `throttled`: ARM answered 429 with Retry-After up to `not_before`, which holds every later slot back too."""
        if throttled:
            self.throttled_until = max(self.throttled_until, round(not_before * 1000))
        now_ms = round(now * 1000)
        self.slots = prune(self.slots, self.limits, now_ms)
        slot = next_slot(self.slots, self.limits, now_ms, max(self.throttled_until, round(not_before * 1000)))
        insort(self.slots, slot)
        return slot / 1000

    def copy(self) -> WriteAdmission:
        return WriteAdmission(self.limits, list(self.slots), self.throttled_until)

    def to_dict(self) -> dict[str, Any]:
        # Instants as the first one and the gaps after it: a few digits each instead of thirteen.
        gaps = [self.slots[0], *(later - earlier for earlier, later in pairwise(self.slots))] if self.slots else []
        return {"limits": format_limits(self.limits), "slots": gaps, "throttledUntil": self.throttled_until}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, default_limits: str) -> WriteAdmission:
        data = data or {}
        slots: list[int] = []
        for gap in data.get("slots", []):
            slots.append(int(gap) + (slots[-1] if slots else 0))
        return cls(parse_limits(data.get("limits") or default_limits), slots, int(data.get("throttledUntil", 0)))
