"""The HTTP surface: aiohttp routes for ARM's container group API (api-version 2023-05-01) and the emulator's admin
endpoints. Each handler parses its request into plain values, calls the `Emulator`, and renders the answer; no
aiohttp object goes further down.

Responses follow what the real SDK accepts (ACI reference, section 1.2): PUT answers 201/200 with
`provisioningState: Pending` and an `Azure-AsyncOperation` header pointing back here; stop and restart answer
exactly 204; start answers 202 with the header (204 when already running); delete answers 200 with the body (204
when absent); errors use the ARM envelope `{"error": {"code", "message"}}`.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

from aciemu import auth
from aciemu.arm import PROVIDER, ArmError, ArmFailure, invalid_content
from aciemu.emulator import Emulator, GroupAction
from aciemu.faults import FaultRuleInvalid
from aciemu.limits import Limits, LimitsInvalid
from aciemu.rendering import (
    OperationKind,
    operation_url,
    render_deleted,
    render_group,
    render_page,
    render_usages,
)
from localtools import fastjson

SUBSCRIPTION = "/subscriptions/{sub}"
GROUPS = SUBSCRIPTION + "/resourceGroups/{rg}/providers/" + PROVIDER + "/containerGroups"
GROUP = GROUPS + "/{name}"
LOCATION = SUBSCRIPTION + "/providers/" + PROVIDER + "/locations/{loc}"
# The one route open without the token: the launcher polls it for readiness; it names no group (only a count).
HEALTH_ROUTE = "health"
OPEN_ROUTES = frozenset({HEALTH_ROUTE})
UNISOLATED_WARNING = (
    "WARNING: bubblewrap is not in use, so containers are NOT isolated: every container can read all files "
    "this emulator can (other groups' secure values, devhost's data, your home) and see other containers' "
    "processes. Install bubblewrap (apt-get install bubblewrap) for tenant isolation."
)

UNSUPPORTED = ArmError(
    400, "UnsupportedOperation", "The emulator does not support exec or attach: containers are local processes."
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def arm_json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=fastjson.dumps(body), status=status, headers=headers,
        content_type="application/json", charset="utf-8",
    )  # fmt: skip


def arm_error(error: ArmError) -> web.Response:
    return arm_json(error.envelope(), error.status, dict(error.headers))


def require_token(token: str) -> Middleware:
    """Middleware: every route but `OPEN_ROUTES` (the fault admin routes too: a `vanish` rule deletes groups)
    answers 401 with ARM's envelope unless the request carries `Authorization: Bearer <token>`."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.match_info.route.name not in OPEN_ROUTES:
            try:
                auth.check(request.headers.get("Authorization"), token)
            except auth.Unauthenticated as refused:
                # ARM's gateway answers with a bearer challenge and says the refusal is its own, not the RP's.
                headers = {"WWW-Authenticate": 'Bearer error="invalid_token"', "x-ms-failure-cause": "gateway"}
                return arm_error(ArmError(refused.status, refused.code, refused.message, headers))
        return await handler(request)

    return middleware


def arm(handler: Handler) -> Handler:
    """Answer an `ArmFailure` raised below with its ARM envelope."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except ArmFailure as failure:
            return arm_error(failure.error)

    return wrapped


async def json_body(request: web.Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        raise ArmFailure(invalid_content("The request content was not valid JSON.")) from None


def names(request: web.Request) -> tuple[str, str, str]:
    info = request.match_info
    return info["sub"], info["rg"], info.get("name", "")


def origin(request: web.Request) -> str:
    """scheme://host[:port] as the client addressed this emulator (operation URLs must lead back here)."""
    return f"{request.scheme}://{request.host}"


def skip_token(request: web.Request) -> int:
    text = request.query.get("$skiptoken", "0") or "0"
    if not text.isdecimal():
        raise ArmFailure(invalid_content(f"The $skiptoken '{text}' is not one this emulator handed out."))
    return int(text)


def group_routes(emulator: Emulator) -> list[web.RouteDef]:
    """ARM's container group API."""

    @arm
    async def put_group(request: web.Request) -> web.Response:
        sub, rg, name = names(request)
        outcome = await emulator.put(sub, rg, name, await json_body(request))
        url = operation_url(origin(request), outcome.group, OperationKind.CREATE, emulator.location)
        headers = {"Azure-AsyncOperation": url, **outcome.rate_headers}
        return arm_json(render_group(outcome.group), 200 if outcome.replaced else 201, headers)

    @arm
    async def get_group(request: web.Request) -> web.Response:
        return arm_json(render_group(emulator.get(*names(request))))

    @arm
    async def patch_group(request: web.Request) -> web.Response:
        sub, rg, name = names(request)
        emulator.find(sub, rg, name)  # a missing group is a 404 whatever the body
        return arm_json(render_group(emulator.update_tags(sub, rg, name, await json_body(request))))

    @arm
    async def delete_group(request: web.Request) -> web.Response:
        rate_headers, group = emulator.admit_delete(*names(request))
        if group is None:
            return web.Response(status=204, headers=rate_headers)
        rendered = render_deleted(group)  # as it was before its processes stop
        await emulator.delete_group(group)
        return arm_json(rendered, 200, rate_headers)

    @arm
    async def group_action(request: web.Request) -> web.Response:
        sub, rg, name = names(request)
        starting = await emulator.act(sub, rg, name, GroupAction(request.match_info["action"]))
        if starting is None:
            return web.Response(status=204)
        url = operation_url(origin(request), starting, OperationKind.START, emulator.location)
        return web.Response(status=202, headers={"Azure-AsyncOperation": url})

    @arm
    async def container_logs(request: web.Request) -> web.Response:
        tail = request.query.get("tail")
        container = request.match_info["container"]
        count = int(tail) if tail and tail.isdecimal() else None  # anything else: the whole log, as before
        return arm_json({"content": emulator.container_log(*names(request), container, count)})

    @arm
    async def unsupported(request: web.Request) -> web.Response:
        raise ArmFailure(UNSUPPORTED)

    @arm
    async def list_in_group(request: web.Request) -> web.Response:
        sub, rg, _ = names(request)
        groups = emulator.list_groups(sub, rg)
        return arm_json(render_page(groups, skip_token(request), emulator.page_size, request.url))

    @arm
    async def list_in_subscription(request: web.Request) -> web.Response:
        groups = emulator.list_groups(request.match_info["sub"])
        return arm_json(render_page(groups, skip_token(request), emulator.page_size, request.url))

    @arm
    async def operation(request: web.Request) -> web.Response:
        return arm_json(emulator.operation_status(request.match_info["op"]))

    @arm
    async def usages(request: web.Request) -> web.Response:
        return arm_json(render_usages(emulator.usages(request.match_info["sub"], request.match_info["loc"])))

    actions = "|".join(action.value for action in GroupAction)
    return [
        web.put(GROUP, put_group),
        web.get(GROUP, get_group),
        web.patch(GROUP, patch_group),
        web.delete(GROUP, delete_group),
        web.post(GROUP + "/{action:" + actions + "}", group_action),
        web.get(GROUP + "/containers/{container}/logs", container_logs),
        web.post(GROUP + "/containers/{container}/{kind:exec|attach}", unsupported),
        web.get(GROUPS, list_in_group),
        web.get(SUBSCRIPTION + "/providers/" + PROVIDER + "/containerGroups", list_in_subscription),
        web.get(LOCATION + "/operations/{op}", operation),
        web.get(LOCATION + "/usages", usages),
    ]


def admin_routes(emulator: Emulator) -> list[web.RouteDef]:
    """The emulator's own endpoints: readiness, fault rules and subscription limits."""

    async def health(request: web.Request) -> web.Response:
        return arm_json(emulator.health())

    async def list_faults(request: web.Request) -> web.Response:
        return arm_json({"rules": [rule.to_dict() for rule in emulator.faults.rules]})

    async def add_fault(request: web.Request) -> web.Response:
        try:
            data = await request.json()
            rules = [emulator.faults.add(item) for item in (data if isinstance(data, list) else [data])]
        except (ValueError, FaultRuleInvalid) as error:
            return arm_json({"error": {"code": "InvalidFault", "message": str(error)}}, 400)
        return arm_json({"rules": [rule.to_dict() for rule in rules]}, 201)

    async def clear_faults(request: web.Request) -> web.Response:
        emulator.faults.clear()
        return web.Response(status=204)

    def limits_view() -> dict[str, Any]:
        return {"limits": emulator.limits.to_dict(), "usage": emulator.writes.usage()}

    async def get_limits(request: web.Request) -> web.Response:
        return arm_json(limits_view())

    async def put_limits(request: web.Request) -> web.Response:
        try:
            emulator.set_limits(Limits.from_dict(await request.json()))
        except (ValueError, LimitsInvalid) as error:
            return arm_json({"error": {"code": "InvalidLimits", "message": str(error)}}, 400)
        return arm_json(limits_view())

    async def clear_limits(request: web.Request) -> web.Response:
        emulator.set_limits(Limits())
        return web.Response(status=204)

    return [
        web.get("/_emulator/health", health, name=HEALTH_ROUTE),
        web.get("/_emulator/faults", list_faults),
        web.post("/_emulator/faults", add_fault),
        web.delete("/_emulator/faults", clear_faults),
        web.get("/_emulator/limits", get_limits),
        web.put("/_emulator/limits", put_limits),
        web.delete("/_emulator/limits", clear_limits),
    ]


def build_app(emulator: Emulator, token: str) -> web.Application:
    app = web.Application(client_max_size=4 * 1024 * 1024, middlewares=[require_token(token)])
    app.router.add_routes(admin_routes(emulator))
    app.router.add_routes(group_routes(emulator))

    async def on_startup(app: web.Application) -> None:
        await emulator.load()

    async def on_cleanup(app: web.Application) -> None:
        await emulator.shutdown()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app


async def serve(emulator: Emulator, host: str, port: int, stop: asyncio.Event, token: str) -> None:
    runner = web.AppRunner(build_app(emulator, token), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    print(f"aciemu listening on http://{host}:{port} (bubblewrap: {emulator.use_bwrap})", flush=True)
    if not emulator.use_bwrap:
        print(UNISOLATED_WARNING, file=sys.stderr, flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
