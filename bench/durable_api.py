"""The bench's client of the Durable HTTP API: JSON over kept connections, with the extension's system key."""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from acibatch.loopback import KeptConnections

# An orchestration's runtime statuses before it has ended (the bench's waits poll until none is left).
UNFINISHED = ("Pending", "Running", "ContinuedAsNew")

# The bench's requests reuse their connections, as any real client of the Durable HTTP API does (the Durable
# client keeps an aiohttp session): a new TCP connection per request would spend the host's time, on the same two
# cores, on connection set-up instead of orchestrations.
_connections = KeptConnections(timeout=120)
# How the bench presents the Durable extension's system key (devhost refuses the Durable HTTP API without it): a
# header, so the key stays out of the URLs that error messages quote.
DURABLE_KEY_HEADER = "x-functions-key"


def request_json(method: str, url: str, body: Any = None, key: str | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    headers = {} if data is None else {"Content-Type": "application/json"}
    if key is not None:
        headers[DURABLE_KEY_HEADER] = key
    response, payload = _connections.exchange(method, url, data, headers)
    if response.status >= 400:
        raise RuntimeError(f"{method} {url}: HTTP {response.status}: {payload[:500]!r}")
    return json.loads(payload)


def close_connections() -> None:
    """Close the kept connections (tests do after each test)."""
    _connections.close()


def post_json(url: str, body: Any = None, key: str | None = None) -> Any:
    return request_json("POST", url, body, key)


def get_json(url: str, key: str | None = None) -> Any:
    return request_json("GET", url, key=key)


# The Durable HTTP API's routes as devhost names them when it counts client calls (its route handlers in
# `devhost/durableapi.py`), so the bench can take its own calls out of what the job cost. Tried in order, on the
# path without its query; the management verbs may carry a tail (`/terminate?reason=...`).
ROUTES: tuple[tuple[str, re.Pattern[str], str], ...] = tuple(
    (method, re.compile(pattern), name)
    for method, pattern, name in (
        ("GET", r"devhost/work", ""),  # devhost does not count the reading of its counts
        ("POST", r"orchestrators/[^/]+(/[^/]+)?", "start"),
        ("*", r"instances/?", "instances_query"),
        ("POST", r"instances/[^/]+/raiseEvent/[^/]+", "raise_event"),
        ("POST", r"instances/[^/]+/(terminate|suspend|resume|restart|rewind)(/.*)?", ""),
        ("GET", r"instances/[^/]+", "status"),
        ("DELETE", r"instances/[^/]+", "purge"),
        ("POST", r"entities/[^/]+/[^/]+", "signal_entity"),
        ("GET", r"entities/[^/]+/[^/]+", "entity_state"),
    )
)


# The bench calls from thread pools (HelloCities5's starts, the dispatch readings): a counter's `+=` is not atomic.
_counting = threading.Lock()


def route_name(method: str, path: str) -> str | None:
    """devhost's name for the route a call to `path` (relative to the API's root) takes; "" for a call devhost
    does not count; None for a path of no route."""
    bare = path.split("?", 1)[0]
    for allowed, pattern, name in ROUTES:
        match = pattern.fullmatch(bare)
        if match and allowed in ("*", method):
            if not name and bare.startswith("instances/"):
                return str(match.group(1))  # a management verb: its handler has the verb's name
            return name
    return None


@dataclass(frozen=True)
class DurableApi:
    """A devhost's Durable HTTP API and the extension's system key that every call to it must present.

    `calls` counts the calls made through it by devhost's route name, as devhost counts them, so that a
    measurement can subtract the bench's own polling from the work devhost reports (`bench/durablework.py`).
    """

    url: str  # .../runtime/webhooks/durabletask
    key: str
    calls: Counter[str] = field(default_factory=Counter, compare=False, hash=False, repr=False)

    @classmethod
    def of(cls, host_url: str, key: str) -> DurableApi:
        return cls(f"{host_url}/runtime/webhooks/durabletask", key)

    def get(self, path: str) -> Any:
        self._count("GET", path)
        return get_json(f"{self.url}/{path}", self.key)

    def post(self, path: str, body: Any = None) -> Any:
        self._count("POST", path)
        return post_json(f"{self.url}/{path}", body, self.key)

    def _count(self, method: str, path: str) -> None:
        name = route_name(method, path)
        if name:
            with _counting:
                self.calls[name] += 1


def wait_all(api: DurableApi, ids: list[str], timeout: float) -> None:
    """Poll until none of `ids` is unfinished, then check that every one of them completed.

    Asks for one unfinished instance at a time (`top=1`), so waiting costs the host little while it works.
    """
    deadline = time.monotonic() + timeout
    wanted = set(ids)
    while api.get(f"instances/?runtimeStatus={','.join(UNFINISHED)}&top=1&showInput=false"):
        if time.monotonic() > deadline:
            raise TimeoutError("orchestrations unfinished")
        time.sleep(0.1)
    listed = api.get("instances/?showInput=false")
    finished = {item["instanceId"]: item for item in listed if item["instanceId"] in wanted}
    for instance in ids:
        item = finished.get(instance)
        if item is None or item["runtimeStatus"] != "Completed":
            raise RuntimeError(f"{instance} {item and item['runtimeStatus']}: {item and item['output']}")


def wait_for_instance(api: DurableApi, instance: str, poll_seconds: float = 0.05) -> None:
    """Until the orchestration has ended: the job is done when its orchestration is (the API reads its state there).

    The host's status of one instance, without its input, is cheap next to the API's GET of the whole job, so
    polling it often neither loads the job nor adds more than one poll interval to its time (a coarse poll of
    the job's GET would add half its interval on average).
    """
    while api.get(f"instances/{instance}?showInput=false")["runtimeStatus"] in UNFINISHED:
        time.sleep(poll_seconds)
