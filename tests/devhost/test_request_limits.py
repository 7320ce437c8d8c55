"""The Functions host's request limits in devhost: the body size cap (413 before the body is held) and host.json's
outstanding/concurrent request throttle (429), checked on real devhost processes over loopback HTTP; and the
whole local stack staying small under oversized unauthenticated posts."""

from __future__ import annotations

import http.client
import json
import textwrap
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from bench.run import find_pids, peak_rss_of_stack
from devhost.launcher import DevhostProcess, ServiceFailed
from devhost.requestlimits import BODY_LIMIT_SETTING, SCALE_OUT_HEADER, UNBOUNDED, RequestLimits
from localdev.client import BatchClient
from localdev.localstack import local_stack

pytestmark = pytest.mark.e2e
MB = 1024 * 1024
APP = """
import asyncio
import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="slow", methods=["GET"])
async def slow(req: func.HttpRequest) -> str:
    await asyncio.sleep(1.0)
    return "done"


@app.route(route="size", methods=["POST"])
def size(req: func.HttpRequest) -> str:
    return str(len(req.get_body()))


@app.orchestration_trigger(context_name="context")
def nothing(context: df.DurableOrchestrationContext):
    return None
"""


def write_app(folder: Path, http: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "function_app.py").write_text(textwrap.dedent(APP))
    (folder / "host.json").write_text(json.dumps({"version": "2.0", "extensions": {"http": http}}))
    return folder


def send(
    port: int,
    method: str,
    path: str,
    body: bytes | Iterable[bytes] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes, float]:
    """Status, headers, body and seconds taken; an iterable body goes out chunked unless Content-Length is given."""
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        all_headers = dict(headers or {})
        chunked = body is not None and not isinstance(body, bytes) and "Content-Length" not in all_headers
        connection.request(method, path, body=body, headers=all_headers, encode_chunked=chunked)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read(), time.monotonic() - started
    finally:
        connection.close()


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevhostProcess]:
    folder = tmp_path_factory.mktemp("limits")
    app = write_app(folder / "app", {"maxConcurrentRequests": 1, "maxOutstandingRequests": 2})
    env = {BODY_LIMIT_SETTING: "1000"}
    with DevhostProcess(app, folder / "data", env=env, log_path=folder / "devhost.log") as host:
        yield host


def test_requests_over_the_outstanding_limit_get_429_and_one_runs_at_a_time(limited: DevhostProcess) -> None:
    with ThreadPoolExecutor(5) as pool:
        slow = [pool.submit(send, limited.port, "GET", "/api/slow") for _ in range(4)]
        time.sleep(0.3)
        admin = send(limited.port, "GET", "/admin/host/status")  # /admin is never throttled
        answers = [future.result() for future in slow]
    assert admin[0] == 200 and admin[3] < 0.5
    statuses = sorted(answer[0] for answer in answers)
    assert statuses == [200, 200, 429, 429]
    refused = [answer for answer in answers if answer[0] == 429]
    assert all(answer[1].get(SCALE_OUT_HEADER) == "1" and answer[3] < 0.5 for answer in refused)
    took = sorted(answer[3] for answer in answers if answer[0] == 200)
    assert took[0] >= 0.9 and took[1] >= 1.9  # the second waited for the first: one concurrent request


def test_a_body_over_the_limit_is_refused_with_413(limited: DevhostProcess) -> None:
    assert send(limited.port, "POST", "/api/size", b"x" * 1000)[:1] == (200,)
    assert send(limited.port, "POST", "/api/size", b"x" * 1000)[2] == b"1000"
    status, _, text, _ = send(limited.port, "POST", "/api/size", b"x" * 1001)
    assert status == 413 and b"1000" in text  # says the limit
    # Chunked: no size announced, refused once the body passes the limit.
    assert send(limited.port, "POST", "/api/size", (b"y" * 400 for _ in range(10)))[0] == 413
    assert send(limited.port, "POST", "/api/size", (b"y" * 400 for _ in range(2)))[:1] == (200,)
    # The Durable HTTP API is behind the same limit.
    durable = "/runtime/webhooks/durabletask/orchestrators/nothing"
    key = {"x-functions-key": limited.system_key, "Content-Type": "application/json"}
    assert send(limited.port, "POST", durable, json.dumps("z" * 1000).encode(), key)[0] == 413
    assert send(limited.port, "POST", durable, json.dumps("z" * 10).encode(), key)[0] == 202


def test_an_invalid_throttle_setting_stops_devhost_with_its_name(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app", {"maxConcurrentRequests": 0})
    with pytest.raises(ServiceFailed) as failed, DevhostProcess(app, tmp_path / "data", log_path=tmp_path / "log"):
        pass
    assert "extensions.http.maxConcurrentRequests" in str(failed.value)


def test_six_concurrent_99_mb_posts_without_a_key_keep_the_stack_small(tmp_path: Path) -> None:
    """The local stack as `acibatch up` runs it: each post is refused (4xx) on its declared size, unread."""
    size = 99 * MB
    chunk = b" " * MB

    def post_jobs(port: int) -> tuple[int, dict[str, str], bytes, float]:
        headers = {"Content-Type": "application/json", "Content-Length": str(size)}
        return send(port, "POST", "/api/jobs", (chunk for _ in range(size // MB)), headers)

    with local_stack(tmp_path / "stack") as stack:
        port = int(stack.host_url.rsplit(":", 1)[1])
        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(lambda _: post_jobs(port), range(6)))
        rss = peak_rss_of_stack(find_pids(stack.host_url, stack.aci_url))
        # Between the app's own cap and the host's: the app refuses it on its Content-Length, with its envelope.
        admin = BatchClient(stack.api_url, stack.admin_key)
        tenant_key = admin.put_tenant("big", {"maxGroups": 1, "maxCores": 1, "maxMemoryGb": 1})["apiKey"]
        middle = json.dumps({"jobId": "j", "pad": "p" * (2 * MB)}).encode()
        auth = {"Authorization": f"Bearer {tenant_key}", "Content-Type": "application/json"}
        status, _, text, _ = send(port, "POST", "/api/jobs", middle, auth)
    assert [answer[0] for answer in answers] == [413] * 6
    assert rss["devhost"] < 300, rss
    assert status == 413
    error = json.loads(text)["error"]
    assert error["code"] == "PayloadTooLarge" and "limit" in error["message"]


@pytest.mark.parametrize(
    ("http", "environ", "expected"),
    [
        ({}, {}, RequestLimits(100 * MB, UNBOUNDED, UNBOUNDED)),  # the host's defaults: 100 MiB, no throttle
        ({"maxOutstandingRequests": 200, "maxConcurrentRequests": 100}, {}, RequestLimits(100 * MB, 200, 100)),
        ({"maxConcurrentRequests": -1}, {BODY_LIMIT_SETTING: "4096"}, RequestLimits(4096, UNBOUNDED, UNBOUNDED)),
        ({}, {BODY_LIMIT_SETTING: "lots"}, RequestLimits(100 * MB, UNBOUNDED, UNBOUNDED)),  # the host ignores it
    ],
)
def test_limits_read_from_host_json_and_the_setting(
    http: dict[str, Any], environ: dict[str, str], expected: RequestLimits
) -> None:
    assert RequestLimits.from_config({"extensions": {"http": http}}, environ) == expected


@pytest.mark.parametrize("value", [0, -2, 1.5, "10", True])
def test_a_throttle_value_that_is_not_a_count_is_refused(value: object) -> None:
    with pytest.raises(ValueError, match="maxOutstandingRequests"):
        RequestLimits.from_config({"extensions": {"http": {"maxOutstandingRequests": value}}}, {})
