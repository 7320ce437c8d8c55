"""The Functions host's request limits: the body size cap, and host.json's outstanding/concurrent request throttle.

- Body size: the host's web server refuses a request body over `FUNCTIONS_REQUEST_BODY_SIZE_LIMIT` bytes
  (100 MiB when unset or not a number) with 413 when the body is read: at once from a Content-Length, or as soon
  as a chunked body passes the limit. devhost checks before it buffers anything, so an oversized body is never held.
- Throttle: with host.json `extensions.http.maxOutstandingRequests` / `maxConcurrentRequests` set (-1, the
  default, is unbounded), every request except `/admin/...` waits its turn for one of `maxConcurrentRequests`
  slots, and a request arriving while `maxOutstandingRequests` are already running or waiting is refused at once
  with 429 and `X-FUNCTION-SCALEOUT: 1`. Waiting requests are not read, so their bodies stay in the socket.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

log = logging.getLogger("devhost")

BODY_LIMIT_SETTING = "FUNCTIONS_REQUEST_BODY_SIZE_LIMIT"
DEFAULT_BODY_LIMIT = 100 * 1024 * 1024
UNBOUNDED = -1
SCALE_OUT_HEADER = "X-FUNCTION-SCALEOUT"


@dataclass(frozen=True)
class RequestLimits:
    max_body_bytes: int = DEFAULT_BODY_LIMIT
    max_outstanding: int = UNBOUNDED
    max_concurrent: int = UNBOUNDED

    @classmethod
    def from_config(cls, host_json: Mapping[str, Any], environ: Mapping[str, str] = os.environ) -> RequestLimits:
        """Raises ValueError naming the host.json field to fix."""
        http = (host_json.get("extensions") or {}).get("http") or {}
        return cls(
            max_body_bytes=body_limit(environ),
            max_outstanding=_throttle_value(http, "maxOutstandingRequests"),
            max_concurrent=_throttle_value(http, "maxConcurrentRequests"),
        )

    @property
    def throttled(self) -> bool:
        return self.max_outstanding != UNBOUNDED or self.max_concurrent != UNBOUNDED


def body_limit(environ: Mapping[str, str]) -> int:
    raw = environ.get(BODY_LIMIT_SETTING, "").strip()
    if not raw:
        return DEFAULT_BODY_LIMIT
    try:
        value = int(raw)
    except ValueError:
        # The host ignores a value it cannot parse as a whole number; say so instead of ignoring it silently.
        log.warning("%s=%r is not a whole number of bytes; using %d", BODY_LIMIT_SETTING, raw, DEFAULT_BODY_LIMIT)
        return DEFAULT_BODY_LIMIT
    if value < 0:
        raise ValueError(f"{BODY_LIMIT_SETTING} must be a number of bytes, 0 or more (got {raw})")
    return value


def _throttle_value(http: Mapping[str, Any], name: str) -> int:
    value = http.get(name, UNBOUNDED)
    if isinstance(value, bool) or not isinstance(value, int) or (value < 1 and value != UNBOUNDED):
        raise ValueError(f"host.json extensions.http.{name} must be a whole number, 1 or more, or -1 for no limit")
    return value


async def read_body(request: web.Request, limit: int | None) -> bytes:
    """The whole body; 413 (raised) as soon as it is, or grows, over `limit` bytes. None reads without limit."""
    declared = request.content_length
    if limit is not None and declared is not None and declared > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=declared)
    body = bytearray()
    async for chunk in request.content.iter_any():
        body.extend(chunk)
        if limit is not None and len(body) > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(body))
    return bytes(body)


class Throttle:
    """Admission for non-admin requests, like the host's request queue (one per host)."""

    def __init__(self, limits: RequestLimits) -> None:
        self.limits = limits
        self.outstanding = 0
        concurrent = limits.max_concurrent
        self.slots = asyncio.Semaphore(concurrent) if concurrent != UNBOUNDED else None

    @asynccontextmanager
    async def admit(self) -> AsyncIterator[bool]:
        """Yields False when the request must be refused (too many outstanding), else True once it may run."""
        limit = self.limits.max_outstanding
        if limit != UNBOUNDED and self.outstanding >= limit:
            yield False
            return
        self.outstanding += 1
        try:
            if self.slots is None:
                yield True
            else:
                async with self.slots:
                    yield True
        finally:
            self.outstanding -= 1

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not self.limits.throttled or request.path.lower().startswith("/admin"):
            return await handler(request)
        async with self.admit() as admitted:
            if not admitted:
                log.info("HTTP request queue limit of %d has been exceeded", self.limits.max_outstanding)
                return web.Response(status=HTTPStatus.TOO_MANY_REQUESTS, headers={SCALE_OUT_HEADER: "1"})
            return await handler(request)
