"""The devhost HTTP server: HTTP triggers, timer triggers, the Durable HTTP API and `/admin/host/status`.

One long-lived event loop runs the server and the Durable engine; every user function runs in a language
worker (`devhost.worker`), as it does in Azure. The Durable HTTP API is served twice, as the real extension
serves it: publicly under `/runtime/webhooks/durabletask/`, only to callers presenting the extension's system key
(`devhost.systemkey`), and on a second loopback listener (the client binding's `rpcBaseUrl`) that the app's own
Durable client calls. The public port also enforces the host's request limits (`devhost.requestlimits`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web

from devhost import systemkey
from devhost.app import AppIndex, FunctionInfo
from devhost.durable import DurableClient, Engine
from devhost.durableapi import BODY_LIMIT, DurableApi
from devhost.ncrontab import Schedule
from devhost.requestlimits import RequestLimits, Throttle, read_body
from devhost.store import Store
from devhost.workers import FunctionFailed, WorkerExited, WorkerPool

log = logging.getLogger("devhost")
WEBHOOK_PREFIX = "/runtime/webhooks/durabletask"
RPC_PATH = "durabletask"


def route_pattern(template: str) -> re.Pattern[str]:
    """ASP.NET route templates: {x}, {x?}, {x:int}, {x:alpha}, {*rest}."""
    pattern = ""
    position = 0
    for match in re.finditer(r"/?\{(\*?)([A-Za-z_][A-Za-z0-9_]*)(?::([a-z]+))?(\?)?\}", template):
        pattern += re.escape(template[position : match.start()])
        catch_all, name, constraint, optional = match.groups()
        slash = "/" if match.group(0).startswith("/") else ""
        if catch_all:
            body = f"(?P<{name}>[\\s\\S]*)"
        elif constraint == "int":
            body = f"(?P<{name}>-?[0-9]+)"
        elif constraint == "alpha":
            body = f"(?P<{name}>[A-Za-z]+)"
        else:
            body = f"(?P<{name}>[^/]+)"
        pattern += f"(?:{re.escape(slash)}{body})?" if optional or catch_all else f"{re.escape(slash)}{body}"
        position = match.end()
    pattern += re.escape(template[position:])
    return re.compile(f"^{pattern}/?$", re.IGNORECASE)


class Host:
    def __init__(
        self,
        index: AppIndex,
        store: Store,
        port: int,
        workers: WorkerPool,
        enforce_keys: str | None = None,
        *,
        system_key: str,
        rpc_base: str,
        limits: RequestLimits | None = None,
    ) -> None:
        self.index = index
        self.port = port
        self.enforce_keys = enforce_keys
        self.system_key = system_key
        self.rpc_base = rpc_base
        self.limits = limits or RequestLimits()
        self.throttle = Throttle(self.limits)
        self.workers = workers
        self.engine = Engine(index, store, workers, self.http_call)
        self.durable_api = DurableApi(DurableClient(self.engine), index, self.base, rpc_base, system_key)
        self.routes = [
            (route_pattern(str(info.route).strip("/")), info) for info in index.functions if info.kind == "http"
        ]
        self.timer_tasks: list[asyncio.Task[None]] = []
        self.session: aiohttp.ClientSession | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def http_call(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self.session is not None
        async with self.session.request(
            request.get("method", "GET"),
            request["uri"],
            data=request.get("content"),
            headers=request.get("headers"),
        ) as response:
            return {
                "statusCode": response.status,
                "headers": dict(response.headers),
                "content": await response.text(),
            }

    # -- HTTP triggers ----------------------------------------------------------------------------------------

    async def http_trigger(self, request: web.Request) -> web.StreamResponse:
        prefix = f"/{self.index.route_prefix}/" if self.index.route_prefix else "/"
        path = request.path
        if not path.startswith(prefix) and prefix != "/":
            return web.Response(status=404)  # like the Functions host: no body for an unmatched route
        relative = path[len(prefix) :] if prefix != "/" else path.lstrip("/")
        allowed: set[str] = set()
        for pattern, info in self.routes:
            match = pattern.match(relative)
            if match is None:
                continue
            if info.methods and request.method not in info.methods:
                allowed.update(info.methods)
                continue
            return await self.run_http(request, info, {k: v for k, v in match.groupdict().items() if v is not None})
        if allowed:
            return web.Response(status=405, headers={"Allow": ", ".join(sorted(allowed))})
        return web.Response(status=404)

    async def run_http(self, request: web.Request, info: FunctionInfo, route_params: dict[str, str]) -> web.Response:
        if self.enforce_keys and info.auth_level.upper() != "ANONYMOUS":
            key = request.headers.get("x-functions-key") or request.query.get("code")
            if key != self.enforce_keys:
                return web.Response(status=401, text="missing or wrong function key")
        fields = {
            "method": request.method,
            "url": str(request.url),
            "headers": dict(request.headers),
            "params": dict(request.query),
            "routeParams": route_params,
        }
        body = await read_body(request, request.config_dict.get(BODY_LIMIT))
        try:
            header, body = await self.workers.invoke(info, body, request=fields)
        except (FunctionFailed, WorkerExited):  # the worker has logged the traceback
            return web.Response(status=500, text=f"Exception while executing function: Functions.{info.name}")
        if "unsupported" in header:
            return web.Response(status=500, text=f"Function {info.name} returned an unsupported value")
        result = header["response"]
        response = web.Response(status=result["status"], body=body, headers=result["headers"])
        if "mimetype" in result and "content-type" not in {k.lower() for k in result["headers"]}:
            mimetype = result["mimetype"] or "text/plain"
            response.headers["Content-Type"] = f"{mimetype}; charset={result['charset'] or 'utf-8'}"
        return response

    # -- timers -----------------------------------------------------------------------------------------------

    async def run_timer(self, info: FunctionInfo) -> None:
        schedule = Schedule(str(info.schedule))
        first = True
        while True:
            now = datetime.now(UTC)
            due = schedule.next_after(now)
            if not (first and info.run_on_startup):
                await asyncio.sleep((due - now).total_seconds())
            first = False
            with contextlib.suppress(FunctionFailed, WorkerExited):  # the worker has logged why
                await self.workers.invoke(info)

    # -- Durable HTTP API (`devhost.durableapi` routes it) ---------------------------------------------------

    async def webhook_api(self, request: web.Request) -> web.StreamResponse:
        """The public Durable HTTP API: the host lets through only a caller with the extension's system key."""
        if not systemkey.matches(systemkey.presented(request.headers, request.query), self.system_key):
            return web.Response(status=401)  # as the host answers a failed key check: no body
        return await self.durable_api.serve(request, request.match_info["tail"])

    async def rpc_api(self, request: web.Request) -> web.StreamResponse:
        """The loopback listener of the client binding's `rpcBaseUrl`. The extension's has no key check: only the
        app's own sandbox reaches it in Azure. Here tenants' containers share the loopback, so its path holds the
        system key, which the Durable SDK sends back without knowing (it appends its routes to `rpcBaseUrl`)."""
        if not systemkey.matches(request.match_info["key"], self.system_key):
            return web.Response(status=401)
        return await self.durable_api.serve(request, request.match_info["tail"])

    async def status(self, request: web.Request) -> web.Response:
        return web.json_response({"state": "Running", "functions": [f.name for f in self.index.functions]})

    # -- app --------------------------------------------------------------------------------------------------

    def build(self) -> web.Application:
        """The public listener. `/durabletask/...` is not served here (it is an unknown route, as in Azure)."""
        app = web.Application(middlewares=[self.throttle.middleware], client_max_size=self.limits.max_body_bytes)
        app[BODY_LIMIT] = self.limits.max_body_bytes
        app.router.add_get("/admin/host/status", self.status)
        app.router.add_route("*", WEBHOOK_PREFIX + r"/{tail:[\s\S]*}", self.webhook_api)
        app.router.add_route("*", r"/{tail:[\s\S]*}", self.http_trigger)
        app.on_startup.append(self.on_startup)
        app.on_cleanup.append(self.on_cleanup)
        return app

    def build_rpc(self) -> web.Application:
        """The loopback RPC listener: neither throttled nor size-limited, like the extension's own."""
        app = web.Application()
        app.router.add_route("*", r"/{key}/" + RPC_PATH + r"/{tail:[\s\S]*}", self.rpc_api)
        app.router.add_route("*", r"/{tail:[\s\S]*}", self.rpc_unknown)
        return app

    async def rpc_unknown(self, request: web.Request) -> web.Response:
        return web.Response(status=401 if RPC_PATH in request.path.split("/") else 404)

    async def on_startup(self, app: web.Application) -> None:
        self.session = aiohttp.ClientSession()
        await self.engine.start()
        loop = asyncio.get_running_loop()
        for info in self.index.functions:
            if info.kind == "timer":
                self.timer_tasks.append(loop.create_task(self.run_timer(info)))

    async def on_cleanup(self, app: web.Application) -> None:
        for task in self.timer_tasks:
            task.cancel()
        for task in self.timer_tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.engine.stop()
        if self.session is not None:
            await self.session.close()
