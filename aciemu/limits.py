"""ACI's subscription limits, as pure rules with an injectable clock: ARM write-rate windows, core quotas and the
regions that offer Spot. All of it is opt-in (`Limits()` limits nothing beyond the core quota the emulator always
had); `server.py` only asks these rules and turns their answers into ARM responses.

What the real service does (sources in aciemu/README.md, "Subscription limits"):

- Container group creates and deletes are counted per subscription and region in two rolling windows each
  (published defaults: 100 per 5 minutes and 300 per hour, for creates and for deletes alike). ARM counts them at
  its front door, before the resource provider sees the request, so every PUT or DELETE it lets through counts,
  even one the provider then refuses; a request it refuses with 429 does not count. The refusal carries
  `Retry-After`: the whole seconds until every full window has room again.
- Standard cores and Spot cores are separate quotas per region (`StandardCores`, `StandardSpotCores`); a create
  that would exceed one is refused with `ContainerGroupQuotaReached`. A Spot quota of 0 is common (the default
  for most subscription types).
- Spot is offered in a few regions only; elsewhere a Spot create is refused as unavailable in the location.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

# ACI's published defaults (Resource availability & quota limits for ACI, "Changeable Limits").
PUBLISHED_WINDOWS = ((100, 300.0), (300, 3600.0))
# Where ACI offers Spot containers today (same page, "Spot Container Resources").
PUBLISHED_SPOT_LOCATIONS = ("eastus2", "westeurope", "westus")


class WriteKind(StrEnum):
    """The ARM writes ACI limits by rate; the value is the action name its throttling message uses."""

    CREATE = "ContainerGroupCreation"
    DELETE = "ContainerGroupDeletion"


class Priority(StrEnum):
    REGULAR = "Regular"
    SPOT = "Spot"


class CoreQuota(StrEnum):
    """The quota names ACI reports in `ContainerGroupQuotaReached` and in the location usages."""

    STANDARD = "StandardCores"
    SPOT = "StandardSpotCores"


class LimitsInvalid(ValueError):
    """A limits document that cannot be used; the message says which field to fix."""


@dataclass(frozen=True)
class Window:
    limit: int
    seconds: float

    def iso_duration(self) -> str:
        """`PT5M`-style, lower case: the suffix of ARM's `x-ms-ratelimit-remaining-...-pt5m` headers."""
        whole = int(self.seconds)
        if whole != self.seconds or whole <= 0:
            return f"pt{self.seconds:g}s"
        hours, rest = divmod(whole, 3600)
        minutes, seconds = divmod(rest, 60)
        text = "pt" + (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
        return text + (f"{seconds}s" if seconds or text == "pt" else "")

    def interval_text(self) -> str:
        """`00:05:00`: how ARM's throttling message writes the window (a .NET TimeSpan)."""
        whole = math.ceil(self.seconds)
        days, rest = divmod(whole, 86400)
        hours, rest = divmod(rest, 3600)
        minutes, seconds = divmod(rest, 60)
        return (f"{days}." if days else "") + f"{hours:02d}:{minutes:02d}:{seconds:02d}"

    def to_dict(self) -> dict[str, Any]:
        return {"limit": self.limit, "seconds": self.seconds}


class SlidingWindow:
    """The admissions of the last `window.seconds` (a rolling window, as ARM's are), oldest first."""

    def __init__(self, window: Window) -> None:
        self.window = window
        self.admitted: deque[float] = deque()

    def _forget_before(self, now: float) -> None:
        while self.admitted and self.admitted[0] <= now - self.window.seconds:
            self.admitted.popleft()

    def remaining(self, now: float) -> int:
        self._forget_before(now)
        return max(0, self.window.limit - len(self.admitted))

    def wait(self, now: float) -> float:
        """Seconds until one more admission fits (0 when it fits now)."""
        self._forget_before(now)
        excess = len(self.admitted) - self.window.limit
        if excess < 0:
            return 0.0
        # The admission that has to leave the window before there is room for one more.
        return self.admitted[excess] + self.window.seconds - now

    def admit(self, now: float) -> None:
        self.admitted.append(now)


@dataclass(frozen=True)
class Throttled:
    """A write refused by a rate window: `retry_after` is whole seconds (at least 1, since the SDK takes a
    `Retry-After: 0` for no header at all) after which every window of this kind has room."""

    kind: WriteKind
    window: Window  # the window that keeps the request out longest (named in the message)
    retry_after: int

    @property
    def message(self) -> str:
        return (
            f"Number of requests for action '{self.kind.value}' exceeded the limit of '{self.window.limit}' for "
            f"time interval '{self.window.interval_text()}'. Please try again after '{self.retry_after}' seconds."
        )


@dataclass(frozen=True)
class Admitted:
    """A write let through; `remaining` is what each of its kind's windows has left after it."""

    remaining: tuple[tuple[Window, int], ...] = ()


class WriteLimiter:
    """Rolling windows per write kind and per (subscription, region) scope."""

    def __init__(
        self, windows: Mapping[WriteKind, Sequence[Window]], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.windows = {kind: tuple(specs) for kind, specs in windows.items() if specs}
        self.clock = clock
        self.scopes: dict[tuple[WriteKind, str, str], list[SlidingWindow]] = {}

    def _scope(self, kind: WriteKind, subscription: str, location: str) -> list[SlidingWindow]:
        key = (kind, subscription.lower(), normalize_location(location))
        if key not in self.scopes:
            self.scopes[key] = [SlidingWindow(window) for window in self.windows[kind]]
        return self.scopes[key]

    def admit(self, kind: WriteKind, subscription: str, location: str) -> Admitted | Throttled:
        """Count the write if every window of its kind has room; otherwise count nothing and say how long to
        wait."""
        if kind not in self.windows:
            return Admitted()
        now = self.clock()
        windows = self._scope(kind, subscription, location)
        waits = [(sliding.wait(now), sliding) for sliding in windows]
        longest, blocking = max(waits, key=lambda pair: pair[0])
        if longest > 0:
            return Throttled(kind, blocking.window, max(1, math.ceil(longest - 1e-9)))
        for sliding in windows:
            sliding.admit(now)
        return Admitted(tuple((sliding.window, sliding.remaining(now)) for sliding in windows))

    def usage(self) -> list[dict[str, Any]]:
        """Every scope seen so far with what its windows have left now (for the admin endpoint)."""
        now = self.clock()
        return [
            {
                "kind": kind.name.lower(), "subscription": subscription, "location": location,
                "windows": [{**s.window.to_dict(), "remaining": s.remaining(now)} for s in windows],
            }
            for (kind, subscription, location), windows in self.scopes.items()
        ]  # fmt: skip


@dataclass(frozen=True)
class QuotaExceeded:
    quota: CoreQuota
    limit: float
    usage: float
    requested: float


@dataclass(frozen=True)
class Limits:
    """What the emulator enforces beyond request validation. The defaults limit nothing new: no rate windows,
    Spot cores counted in one pool with Standard cores (as before this module existed), Spot everywhere."""

    create_windows: tuple[Window, ...] = ()
    delete_windows: tuple[Window, ...] = ()
    standard_cores: float | None = None  # None: the emulator's `--max-cores`
    spot_cores: float | None = None  # None: Spot groups share the Standard core quota
    spot_locations: frozenset[str] | None = None  # None: every location offers Spot
    source: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def published(cls) -> Limits:
        """ACI's published rate windows and Spot regions (quotas stay the emulator's)."""
        return cls.from_dict({"preset": "aci"})

    @classmethod
    def from_dict(cls, data: Any) -> Limits:
        """Parse a limits document: `{"preset"?: "aci", "creates"?: [{"limit", "seconds"}], "deletes"?: [...],
        "standardCores"?: n, "spotCores"?: n, "spotLocations"?: [names]}`; explicit keys override the preset."""
        if not isinstance(data, Mapping):
            raise LimitsInvalid("limits must be a JSON object")
        known = {"preset", "creates", "deletes", "standardCores", "spotCores", "spotLocations"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise LimitsInvalid(f"unknown limits field(s) {unknown}; known: {sorted(known)}")
        preset = data.get("preset")
        if preset not in (None, "aci"):
            raise LimitsInvalid("preset must be 'aci' (ACI's published windows and Spot regions) or absent")
        published = [{"limit": limit, "seconds": seconds} for limit, seconds in PUBLISHED_WINDOWS]
        defaults: dict[str, Any] = (
            {"creates": published, "deletes": published, "spotLocations": list(PUBLISHED_SPOT_LOCATIONS)}
            if preset == "aci"
            else {}
        )
        merged = {**defaults, **{key: value for key, value in data.items() if key != "preset"}}
        spot_locations = merged.get("spotLocations")
        return cls(
            create_windows=_windows(merged.get("creates"), "creates"),
            delete_windows=_windows(merged.get("deletes"), "deletes"),
            standard_cores=_cores(merged.get("standardCores"), "standardCores"),
            spot_cores=_cores(merged.get("spotCores"), "spotCores"),
            spot_locations=None if spot_locations is None else _locations(spot_locations),
            source=dict(data),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "creates": [w.to_dict() for w in self.create_windows],
            "deletes": [w.to_dict() for w in self.delete_windows],
            "standardCores": self.standard_cores,
            "spotCores": self.spot_cores,
            "spotLocations": None if self.spot_locations is None else sorted(self.spot_locations),
        }

    def limiter(self, clock: Callable[[], float] = time.monotonic) -> WriteLimiter:
        return WriteLimiter({WriteKind.CREATE: self.create_windows, WriteKind.DELETE: self.delete_windows}, clock)

    def offers_spot(self, location: str) -> bool:
        return self.spot_locations is None or normalize_location(location) in self.spot_locations

    def check_cores(
        self, priority: Priority, requested: float, standard_used: float, spot_used: float, default_standard: float
    ) -> QuotaExceeded | None:
        """The quota a create of `requested` cores would exceed, given the cores in use by priority."""
        standard = default_standard if self.standard_cores is None else self.standard_cores
        if self.spot_cores is None:  # one pool, named after the request's priority (the emulator's old rule)
            quota = CoreQuota.SPOT if priority is Priority.SPOT else CoreQuota.STANDARD
            limit, used = standard, standard_used + spot_used
        elif priority is Priority.SPOT:
            quota, limit, used = CoreQuota.SPOT, self.spot_cores, spot_used
        else:
            quota, limit, used = CoreQuota.STANDARD, standard, standard_used
        if used + requested > limit + 1e-9:
            return QuotaExceeded(quota, limit, used, requested)
        return None


def normalize_location(location: str) -> str:
    """ARM accepts `West Europe` and `westeurope` for the same region."""
    return "".join(location.split()).lower()


def parse_window(text: str) -> Window:
    """`100/300` (100 per 300 seconds), the command-line form of a window."""
    limit, _, seconds = text.partition("/")
    try:
        return _window({"limit": int(limit), "seconds": float(seconds)}, "window")
    except ValueError:
        raise LimitsInvalid(f"a window is LIMIT/SECONDS, e.g. 100/300, not {text!r}") from None


def _window(item: Any, name: str) -> Window:
    if not isinstance(item, Mapping) or set(item) != {"limit", "seconds"}:
        raise LimitsInvalid(f"each of {name} must be an object with exactly 'limit' and 'seconds'")
    limit, seconds = item["limit"], item["seconds"]
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise LimitsInvalid(f"{name}: limit must be a whole number of at least 1 (omit the window to allow all)")
    if not isinstance(seconds, int | float) or isinstance(seconds, bool) or not 0 < seconds <= 86400:
        raise LimitsInvalid(f"{name}: seconds must be a number above 0 and at most 86400")
    return Window(limit, float(seconds))


def _windows(items: Any, name: str) -> tuple[Window, ...]:
    if items is None:
        return ()
    if not isinstance(items, list):
        raise LimitsInvalid(f"{name} must be a list of windows like {{'limit': 100, 'seconds': 300}}")
    return tuple(_window(item, name) for item in items)


def _cores(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
        raise LimitsInvalid(f"{name} must be a number of cores, 0 or more")
    return float(value)


def _locations(items: Any) -> frozenset[str]:
    if not isinstance(items, list) or not all(isinstance(item, str) and item.strip() for item in items):
        raise LimitsInvalid("spotLocations must be a list of location names, e.g. ['eastus2', 'westeurope']")
    return frozenset(normalize_location(item) for item in items)


def merge_flags(
    base: Limits,
    *,
    creates: Iterable[Window] = (),
    deletes: Iterable[Window] = (),
    spot_cores: float | None = None,
    spot_locations: Iterable[str] | None = None,
) -> Limits:
    """`base` (from a limits file, or nothing) with what command-line flags add or override."""
    creates, deletes = tuple(creates), tuple(deletes)
    return Limits(
        create_windows=creates or base.create_windows,
        delete_windows=deletes or base.delete_windows,
        standard_cores=base.standard_cores,
        spot_cores=base.spot_cores if spot_cores is None else _cores(spot_cores, "--spot-cores"),
        spot_locations=base.spot_locations if spot_locations is None else _locations(list(spot_locations)),
        source=base.source,
    )
