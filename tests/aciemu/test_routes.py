"""The routes in-process: the emulator's aiohttp app on aiohttp's TestServer (real HTTP on 127.0.0.1, in this
event loop), driven by the unmodified async azure-mgmt-containerinstance client and by raw requests for what the
SDK never sends. Containers are real local processes."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.mgmt.containerinstance.aio import ContainerInstanceManagementClient
from azure.mgmt.containerinstance.models import Container, ContainerGroup, ResourceRequests, ResourceRequirements

from aciemu.client import SUBSCRIPTION, emulator_client_async
from aciemu.emulator import Emulator
from aciemu.groupstate import Timings
from aciemu.limits import Limits
from aciemu.routes import OPEN_ROUTES, build_app

TOKEN = "in-process-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
RG = "rg-routes"
VERSION = "?api-version=2023-05-01"
GROUPS = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RG}/providers/Microsoft.ContainerInstance/containerGroups"


def group(*command: str, cpu: float = 0.5, priority: str | None = None, location: str = "westeurope") -> ContainerGroup:
    container = Container(
        name="main", image="python:3", command=list(command),
        resources=ResourceRequirements(requests=ResourceRequests(cpu=cpu, memory_in_gb=0.5)),
    )  # fmt: skip
    return ContainerGroup(location=location, containers=[container], os_type="Linux", restart_policy="Never",
                          priority=priority)  # fmt: skip


class Stack:
    def __init__(self, emulator: Emulator, http: TestClient[web.Request, web.Application]) -> None:
        self.emulator, self.http = emulator, http
        self.url = str(http.make_url("")).rstrip("/")

    def sdk(self, **options: Any) -> ContainerInstanceManagementClient:
        return emulator_client_async(self.url, TOKEN, **options)

    async def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
                   raw: bytes | None = None) -> tuple[int, Any, Any]:  # fmt: skip
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        sent = {"Content-Type": "application/json", **(AUTH if headers is None else headers)}
        async with self.http.request(method, path, data=data, headers=sent) as response:
            text = await response.text()
            return response.status, response.headers, json.loads(text) if text else None


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    emulator = Emulator(tmp_path, max_groups=3, max_cores=2, page_size=2, use_bwrap=False,
                        timings=Timings(provisioning_seconds=0.02))  # fmt: skip
    async with TestClient(TestServer(build_app(emulator, TOKEN))) as http:
        yield Stack(emulator, http)


async def test_a_group_lives_through_the_sdk(stack: Stack) -> None:
    async with stack.sdk() as client:
        poller = await client.container_groups.begin_create_or_update(
            RG, "life", group("sh", "-c", "echo hi; sleep 30")
        )
        created = await poller.result()
        assert created.provisioning_state == "Succeeded"
        got: Any = await client.container_groups.get(RG, "life")
        assert got.instance_view.state == "Running"
        assert got.containers[0].instance_view.current_state.state == "Running"
        for _ in range(100):
            if (await client.containers.list_logs(RG, "life", "main")).content:
                break
            await asyncio.sleep(0.05)
        assert (await client.containers.list_logs(RG, "life", "main")).content == "hi\n"
        assert [g.name async for g in client.container_groups.list_by_resource_group(RG)] == ["life"]
        await client.container_groups.stop(RG, "life")
        stopped: Any = await client.container_groups.get(RG, "life")
        assert stopped.instance_view.state == "Stopped"
        assert stopped.containers[0].instance_view.current_state.exit_code == 137
        await (await client.container_groups.begin_delete(RG, "life")).result()
        with pytest.raises(ResourceNotFoundError) as missing:
            await client.container_groups.get(RG, "life")
        assert missing.value.error is not None and missing.value.error.code == "ResourceNotFound"
    assert list((stack.emulator.data_dir / "groups").glob("*.json")) == []  # the delete erased its file


async def test_validation_refusals_reach_the_sdk_with_their_arm_code(stack: Stack) -> None:
    async with stack.sdk(retry_total=0) as client:
        with pytest.raises(HttpResponseError) as too_big:
            await client.container_groups.begin_create_or_update(RG, "big", group("true", cpu=5))
        assert too_big.value.status_code == 400 and too_big.value.error is not None
        assert too_big.value.error.code == "InvalidContainerResourceRequests"
        with pytest.raises(HttpResponseError) as bad_name:
            await client.container_groups.begin_create_or_update(RG, "Bad_Name", group("true"))
        assert bad_name.value.error is not None and bad_name.value.error.code == "InvalidContainerGroupName"
    assert len(stack.emulator.store) == 0


async def test_quota_spot_regions_and_rate_windows_refuse_as_aci_does(stack: Stack) -> None:
    stack.emulator.set_limits(
        Limits.from_dict({"creates": [{"limit": 3, "seconds": 60}], "spotLocations": ["eastus2"]})
    )
    status, headers, created = await stack.call(
        "PUT", f"{GROUPS}/one{VERSION}", group("sleep", "30", cpu=1.5).serialize()
    )
    assert status == 201 and created["properties"]["provisioningState"] == "Pending"
    assert headers["x-ms-ratelimit-remaining-subscription-resource-requests-pt1m"] == "2"
    assert re.fullmatch(rf"{re.escape(stack.url)}/subscriptions/.*/operations/\w+\?api-version=2018-06-01",
                        headers["Azure-AsyncOperation"])  # fmt: skip
    status, _, quota = await stack.call("PUT", f"{GROUPS}/two{VERSION}", group("sleep", "30", cpu=1).serialize())
    assert (status, quota["error"]["code"]) == (400, "ContainerGroupQuotaReached")
    assert (
        "quota 'StandardCores' exceeded in region 'westeurope'. Limit: '2', Usage: '1.5' Requested: '1'."
        in (quota["error"]["message"])
    )
    status, _, spot = await stack.call("PUT", f"{GROUPS}/spot{VERSION}", group("true", priority="Spot").serialize())
    assert (status, spot["error"]["code"]) == (409, "ServiceUnavailable")
    assert spot["error"]["message"].endswith("Resource requested: '0.5' CPU '0.5' GB memory 'Linux' OS")
    status, headers, throttled = await stack.call("PUT", f"{GROUPS}/three{VERSION}", group("true").serialize())
    assert (status, throttled["error"]["code"], headers["Retry-After"]) == (429, "ResourceRequestsThrottled", "60")


async def test_a_put_while_transitioning_is_refused(tmp_path: Path) -> None:
    emulator = Emulator(tmp_path, use_bwrap=False, timings=Timings(provisioning_seconds=5))
    async with TestClient(TestServer(build_app(emulator, TOKEN))) as http:
        stack = Stack(emulator, http)
        async with stack.sdk(retry_total=0) as client:
            await client.container_groups.begin_create_or_update(RG, "slow", group("true"), polling=False)
            with pytest.raises(ResourceExistsError) as busy:
                await client.container_groups.begin_create_or_update(RG, "slow", group("true"), polling=False)
            assert busy.value.error is not None and busy.value.error.code == "ContainerGroupTransitioning"
            status, _, restart = await stack.call("POST", f"{GROUPS}/slow/restart{VERSION}")
            assert (status, restart["error"]["code"]) == (409, "ContainerGroupTransitioning")
            assert (await stack.call("POST", f"{GROUPS}/slow/stop{VERSION}"))[0] == 204  # stop is always let in


def sample_path(canonical: str) -> str:
    """A concrete path for a route pattern (`{action:stop|start|restart}` -> `stop`, `{name}` -> `x`)."""
    return re.sub(r"\{(\w+)(?::([^|}]+)[^}]*)?\}", lambda m: m.group(2) or "x", canonical)


async def test_every_route_but_health_requires_the_token(stack: Stack) -> None:
    routes = [route for route in stack.http.app.router.routes() if route.method != "HEAD"]
    assert len(routes) == 18  # the ARM API and the admin endpoints, all through aiohttp's router
    for route in routes:
        path = sample_path(route.resource.canonical if route.resource else "")
        status, headers, answer = await stack.call(route.method, path, {}, headers={})
        if route.name in OPEN_ROUTES:
            assert status == 200, path
            continue
        assert (status, answer) == (
            401, {"error": {"code": "AuthenticationFailed",
                            "message": "Authentication failed. The 'Authorization' header is missing."}}
        ), (route.method, path)  # fmt: skip
        assert headers["x-ms-failure-cause"] == "gateway"
    assert len(stack.emulator.store) == 0 and stack.emulator.faults.rules == []


@pytest.mark.parametrize(
    ("method", "path", "raw", "code"),
    [
        ("PUT", f"{GROUPS}/g{VERSION}", b"{not json", "InvalidRequestContent"),
        ("PUT", f"{GROUPS}/g{VERSION}", b"[1]", "InvalidRequestContent"),
        ("GET", f"{GROUPS}{VERSION}&$skiptoken=abc", None, "InvalidRequestContent"),
        ("POST", f"{GROUPS}/g/containers/main/exec{VERSION}", b"{}", "UnsupportedOperation"),
        ("GET", f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.ContainerInstance/locations/westeurope/operations/"
                f"Zm9v{VERSION}", None, "OperationNotFound"),
        ("POST", "/_emulator/faults", b'{"op": "sometimes", "fault": "throttle"}', "InvalidFault"),
        ("POST", "/_emulator/faults", b'{"op": "get", "fault": ["throttle"]}', "InvalidFault"),
        ("PUT", "/_emulator/limits", b'{"creates": 5}', "InvalidLimits"),
    ],
)  # fmt: skip
async def test_bad_requests_are_4xx_with_a_message(stack: Stack, method: str, path: str, raw: bytes | None,
                                                   code: str) -> None:  # fmt: skip
    status, _, answer = await stack.call(method, path, raw=raw)
    assert 400 <= status < 500 and answer["error"]["code"] == code and answer["error"]["message"]


async def test_a_patch_with_a_bad_body_is_a_400_and_changes_nothing(stack: Stack) -> None:
    assert (await stack.call("PUT", f"{GROUPS}/tagged{VERSION}", group("sleep", "30").serialize()))[0] == 201
    status, _, answer = await stack.call("PATCH", f"{GROUPS}/tagged{VERSION}", raw=b"{oops")
    assert (status, answer["error"]["code"]) == (400, "InvalidRequestContent")
    status, _, tagged = await stack.call("PATCH", f"{GROUPS}/tagged{VERSION}", {"tags": {"k": "v"}})
    assert status == 200 and tagged["tags"] == {"k": "v"}
    assert (await stack.call("PATCH", f"{GROUPS}/absent{VERSION}", raw=b"{oops"))[0] == 404


async def test_api_faults_answer_at_the_front_door(stack: Stack) -> None:
    rules = [{"op": "get", "fault": "throttle", "retryAfter": 2, "count": 1},
             {"op": "list", "fault": "error", "status": 503, "code": None, "message": "busy", "count": 1}]  # fmt: skip
    assert (await stack.call("POST", "/_emulator/faults", rules))[0] == 201
    status, headers, answer = await stack.call("GET", f"{GROUPS}/any{VERSION}")
    assert (status, headers["Retry-After"], answer["error"]["code"]) == (429, "2", "TooManyRequests")
    assert (await stack.call("GET", f"{GROUPS}/any{VERSION}"))[0] == 404  # count 1: fired once
    status, _, answer = await stack.call("GET", f"{GROUPS}{VERSION}")
    assert (status, answer) == (503, {"error": {"message": "busy"}})  # `code: null`: a message-only body
    status, _, listed = await stack.call("GET", "/_emulator/faults")
    assert [rule["fired"] for rule in listed["rules"]] == [1, 1]
