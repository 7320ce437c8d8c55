"""The Durable HTTP API (`/runtime/webhooks/durabletask/...` and the client binding's `rpcBaseUrl`).

`devhost.host` checks the caller's system key and hands over the path after the API's prefix; it is routed
here with aiohttp's router over the path's non-empty segments, as the extension does not mind empty ones (the
SDK asks for `instances/` with a trailing slash when it lists instances). Anything unrouted, whatever the
reason (an unknown path, a method the path does not take), answers the same JSON 404 the extension gives.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, cast
from urllib.parse import quote

from aiohttp import web
from yarl import URL

from devhost.app import AppIndex
from devhost.binding import durable_client_binding
from devhost.durable import TERMINAL_STATES, DurableClient, DurableError, Instance
from devhost.durable.workcount import Work
from devhost.requestlimits import read_body

BODY_LIMIT = web.AppKey("body_limit", int)  # None on the RPC listener: the extension's has no body limit

Handler = Callable[["DurableApi", web.Request, Mapping[str, str]], Awaitable[web.StreamResponse]]
ROUTES = web.RouteTableDef()
ANY_TAIL = "{extra:(?:/.*)?}"  # the extension reads only the action's segment: what follows it is ignored


def route(method: str, path: str) -> Callable[[Handler], Handler]:
    """Register a handler of the API's routes (`allow_head=False`: a HEAD is no GET to the extension)."""

    def register(handler: Handler) -> Handler:
        extra = {"allow_head": False} if method == "GET" else {}
        ROUTES.route(method, path, **extra)(cast(Any, handler))
        return handler

    return register


# The orchestration runtime statuses a list query may filter on (the extension's OrchestrationRuntimeStatus).
RUNTIME_STATUSES = frozenset(
    {"Running", "Completed", "ContinuedAsNew", "Failed", "Canceled", "Terminated", "Pending", "Suspended"}
)


def query_int(text: str | None) -> int | None:
    """A query's integer as the extension reads it (`int.TryParse`): None when absent or not an integer."""
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


class DurableApi:
    def __init__(self, client: DurableClient, index: AppIndex, base: str, rpc_base: str, system_key: str) -> None:
        self.client = client
        self.index = index
        self.base = base
        self.rpc_base = rpc_base
        self.system_key = system_key
        self.router = web.UrlDispatcher()
        self.router.add_routes(ROUTES)

    async def serve(self, request: web.Request, tail: str) -> web.StreamResponse:
        try:
            return await self.dispatch(request, tail)
        except DurableError as error:
            return web.json_response({"Message": str(error), "ExceptionMessage": str(error)}, status=error.status)

    async def dispatch(self, request: web.Request, tail: str) -> web.StreamResponse:
        segments = [quote(part, safe="") for part in tail.split("/") if part != ""]
        canonical = request.clone(rel_url=URL("/" + "/".join(segments), encoded=True).with_query(request.query))
        match = await self.router.resolve(canonical)
        if match.http_exception is not None:
            raise DurableError(404, f"no Durable API route for {request.method} {request.path}")
        handler = cast(Handler, match.handler)
        if handler is not DurableApi.work:
            self.client.engine.work.add(Work.CLIENT_CALL, handler.__name__)
        return await handler(self, request, match)

    # -- routes -------------------------------------------------------------------------------------------------

    @route("POST", "/orchestrators/{name}")
    @route("POST", "/orchestrators/{name}/{instance_id}")
    async def start(self, request: web.Request, params: Mapping[str, str]) -> web.StreamResponse:
        has_body, value = await self.read_json(request)
        instance = self.client.start(params["name"], params.get("instance_id"), value if has_body else None)
        payload = self.management_payload(request, instance.id)
        return web.json_response(payload, status=202, headers={"Location": payload["statusQueryGetUri"]})

    @route("GET", "/devhost/work")
    async def work(self, request: web.Request, params: Mapping[str, str]) -> web.StreamResponse:
        """devhost's own route (the extension has none): the Durable work done since start (`workcount`)."""
        return web.json_response(self.client.engine.work.snapshot())

    @route("*", "/instances")
    async def instances_query(self, request: web.Request, params: Mapping[str, str]) -> web.StreamResponse:
        if request.method == "DELETE":
            chosen = self.filter_instances(request)
            deleted = sum(self.client.purge(i.id) for i in chosen if i.status in TERMINAL_STATES)
            return web.json_response({"instancesDeleted": deleted}, status=200 if deleted else 404)
        chosen = self.filter_instances(request)  # any other method reads, as the extension's handler does
        top = query_int(request.query.get("top")) or 0
        start = int(request.headers.get("x-ms-continuation-token", "0") or 0)
        page = chosen[start : start + top] if top else chosen[start:]
        headers = {}
        if top and start + top < len(chosen):
            headers["x-ms-continuation-token"] = str(start + top)
        return web.json_response([self.status_body(i, request) for i in page], headers=headers)

    @route("GET", "/instances/{instance_id}")
    async def status(self, request: web.Request, params: Mapping[str, str]) -> web.StreamResponse:
        found = self.client.instances.get(params["instance_id"])
        if found is None:
            return web.Response(status=404)
        code = 200 if found.status in TERMINAL_STATES else 202
        return web.json_response(self.status_body(found, request), status=code)

    @route("DELETE", "/instances/{instance_id}")
    async def purge(self, request: web.Request, params: Mapping[str, str]) -> web.StreamResponse:
        if not self.client.purge(params["instance_id"]):
            return web.json_response({"instancesDeleted": 0}, status=404)
        return web.json_response({"instancesDeleted": 1})

    @route("POST", "/instances/{instance_id}/raiseEvent/{event}")
    async def raise_event(self, request: web.Request, params: Mapping[str, str]) -> web.StreamResponse:
        has_body, value = await self.read_json(request)
        # Reproduces the real host: the body is parsed once and re-serialised, so the Python client's
        # double-encoded payload reaches the orchestrator as JSON text (durable-python issue #295).
        self.client.raise_event(params["instance_id"], params["event"], json.dumps(value) if has_body else None)
        return web.Response(status=202)

    @route("POST", "/instances/{instance_id}/terminate" + ANY_TAIL)
    async def terminate(self, request: web.Request, params: Mapping[str, str]) -> web.StreamResponse:
        instance_id = params["instance_id"]
        try:
            async with self.client.settled(instance_id):
                self.client.terminate(instance_id, request.query.get("reason"))
        except DurableError as error:
            if error.status != 410:
                raise
            return web.Response(status=410)
        return web.Response(status=202)

    @route("POST", "/instances/{instance_id}/suspend" + ANY_TAIL)
    async def suspend(self, request: web.Request, params: Mapping[str, str]) -> web.StreamResponse:
        async with self.client.settled(params["instance_id"]):
            self.client.suspend(params["instance_id"])
        return web.Response(status=202)

    @route("POST", "/instances/{instance_id}/resume" + ANY_TAIL)
    async def resume(self, request: web.Request, params: Mapping[str, str]) -> web.StreamResponse:
        async with self.client.settled(params["instance_id"]):
            self.client.resume(params["instance_id"])
        return web.Response(status=202)

    @route("POST", "/instances/{instance_id}/restart" + ANY_TAIL)
    async def restart(self, request: web.Request, params: Mapping[str, str]) -> web.StreamResponse:
        new_id = request.query.get("restartWithNewInstanceId", "true").lower() != "false"
        instance = self.client.restart(params["instance_id"], new_id)
        return web.json_response(self.management_payload(request, instance.id), status=202)

    @route("POST", "/instances/{instance_id}/rewind" + ANY_TAIL)
    async def rewind(self, request: web.Request, params: Mapping[str, str]) -> web.StreamResponse:
        raise DurableError(501, "devhost does not implement rewind")

    @route("POST", "/entities/{name}/{key}")
    async def signal_entity(self, request: web.Request, params: Mapping[str, str]) -> web.StreamResponse:
        operation = request.query.get("op", "")
        has_body, value = await self.read_json(request)
        entity_id = f"@{params['name'].lower()}@{params['key']}"
        self.client.signal_entity(entity_id, operation, json.dumps(value) if has_body else None)
        return web.Response(status=202)

    @route("GET", "/entities/{name}/{key}")
    async def entity_state(self, request: web.Request, params: Mapping[str, str]) -> web.StreamResponse:
        state, exists = self.client.entity_state(f"@{params['name'].lower()}@{params['key']}")
        if not exists:
            return web.Response(status=404)
        return web.json_response(state)

    # -- helpers ------------------------------------------------------------------------------------------------

    async def read_json(self, request: web.Request) -> tuple[bool, Any]:
        raw = await read_body(request, request.config_dict.get(BODY_LIMIT))
        if not raw:
            return False, None
        try:
            return True, json.loads(raw)
        except ValueError:
            raise DurableError(400, "the request body must be JSON") from None

    def status_body(self, instance: Instance, request: web.Request) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": instance.name,
            "instanceId": instance.id,
            "runtimeStatus": instance.status,
            "input": instance.input,
            "customStatus": instance.custom_status,
            "output": instance.output,
            "createdTime": datetime.fromtimestamp(instance.created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "lastUpdatedTime": datetime.fromtimestamp(instance.updated, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        if request.query.get("showInput", "true").lower() == "false":
            body["input"] = None
        if request.query.get("showHistory", "").lower() == "true":
            show_output = request.query.get("showHistoryOutput", "").lower() == "true"
            body["historyEvents"] = [
                {k: v for k, v in e.items() if show_output or k not in {"Result", "Input"}}
                for e in self.client.history(instance)
            ]
        return body

    @functools.cached_property
    def management_urls(self) -> dict[str, str]:
        binding = durable_client_binding(self.base, self.index.hub_name, self.rpc_base, self.system_key)
        urls: dict[str, str] = json.loads(binding)["managementUrls"]
        return urls

    def management_payload(self, request: web.Request, instance_id: str) -> dict[str, Any]:
        origin = f"{request.scheme}://{request.host}"
        return {k: v.replace("INSTANCEID", quote(instance_id, safe="")).replace(self.base, origin)
                for k, v in self.management_urls.items()}  # fmt: skip

    def filter_instances(self, request: web.Request) -> list[Instance]:
        query = request.query
        # The extension drops a value it cannot parse and filters on the rest (HttpApiHandler's TryGet...Value):
        # an unknown status is ignored, and with none left every status matches.
        given = (part.strip() for value in query.getall("runtimeStatus", ()) for part in value.split(","))
        statuses = RUNTIME_STATUSES.intersection(given)
        prefix = query.get("instanceIdPrefix", "")

        def stamp(name: str) -> float | None:
            text = query.get(name)
            try:
                return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() if text else None
            except ValueError:
                return None

        start, end = stamp("createdTimeFrom"), stamp("createdTimeTo")
        chosen = [
            instance
            for instance in self.client.instances.values()
            if (not statuses or instance.status in statuses)
            and instance.id.startswith(prefix)
            and (start is None or instance.created >= start)
            and (end is None or instance.created <= end)
        ]
        return sorted(chosen, key=lambda i: i.created)  # only what matched: a narrow query in a big hub stays cheap
