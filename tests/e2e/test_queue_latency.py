"""The app on devhost's idle-queue mode (`DEVHOST_QUEUE_LATENCY=idle`): signals and events reach entities and
orchestrations only when an idle poller looks, as on a scaled-out Azure app. Tenant administration must still
answer correctly, never lose a key, and task callbacks must still complete tasks."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from localdev.client import BatchClient
from localdev.localstack import LocalStack
from tests.e2e.conftest import QUEUE_MAX_POLL_SECONDS, python_job, wait_job

pytestmark = pytest.mark.e2e

QUOTA = {"maxGroups": 2, "maxCores": 2, "maxMemoryGb": 4, "weight": 1}


def call(
    stack: LocalStack, method: str, path: str, key: str, body: Any = None, prefer: str | None = None
) -> tuple[int, dict[str, str], Any]:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    if prefer is not None:
        headers["Prefer"] = prefer
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{stack.api_url}/{path}", data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, dict(response.headers), json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read() or b"null")


def let_queues_idle() -> None:
    """Long enough without messages for every poller to back off to the maximum interval."""
    time.sleep(2.5 * QUEUE_MAX_POLL_SECONDS)


def seconds_until_key_works(stack: LocalStack, tenant: str, key: str) -> float:
    start = time.monotonic()
    while call(stack, "GET", f"tenants/{tenant}", key)[0] != 200:
        assert time.monotonic() - start < 2 * QUEUE_MAX_POLL_SECONDS + 10, f"the key of {tenant} never started working"
        time.sleep(0.05)
    return time.monotonic() - start


def test_tenant_create_update_and_rotation_wait_until_applied(latency_stack: LocalStack) -> None:
    admin = latency_stack.admin_key
    let_queues_idle()
    started = time.monotonic()
    status, _, created = call(latency_stack, "PUT", "tenants/lat-a", admin, QUOTA)
    took_create = time.monotonic() - started
    assert status == 201, created
    assert created["created"] is True and created["applied"] is True and "message" not in created
    key = created["apiKey"]
    assert call(latency_stack, "GET", "tenants/lat-a", key)[0] == 200  # the answer can be relied on: works now

    let_queues_idle()
    status, _, updated = call(latency_stack, "PUT", "tenants/lat-a", admin, {"maxGroups": 3}, prefer="wait=999")
    assert status == 200, updated
    assert updated["applied"] is True and updated["created"] is False and "apiKey" not in updated
    assert call(latency_stack, "GET", "tenants/lat-a", admin)[2]["quota"]["maxGroups"] == 3

    let_queues_idle()
    started = time.monotonic()
    status, _, rotated = call(latency_stack, "POST", "tenants/lat-a/keys", admin, {})
    took_rotate = time.monotonic() - started
    assert status == 200, rotated
    assert rotated["applied"] is True
    assert call(latency_stack, "GET", "tenants/lat-a", key)[0] == 401
    assert call(latency_stack, "GET", "tenants/lat-a", rotated["apiKey"])[0] == 200
    # The signals did wait for a poll (up to the maximum), and the API waited for them, well within its bound.
    assert max(took_create, took_rotate) <= QUEUE_MAX_POLL_SECONDS + 5, (took_create, took_rotate)
    print(f"create answered in {took_create:.2f} s, rotation in {took_rotate:.2f} s")


def test_an_answer_before_the_change_applies_is_202_with_the_key(latency_stack: LocalStack) -> None:
    admin = latency_stack.admin_key
    let_queues_idle()
    status, headers, created = call(latency_stack, "PUT", "tenants/lat-b", admin, QUOTA, prefer="respond-async")
    assert status == 202, created
    assert created["created"] is True and created["applied"] is False
    assert headers["Preference-Applied"] == "respond-async"
    assert headers["Location"].endswith("/api/tenants/lat-b") and int(headers["Retry-After"]) >= 1
    assert "Keep this apiKey" in created["message"]
    applied_after = seconds_until_key_works(latency_stack, "lat-b", created["apiKey"])
    assert applied_after <= QUEUE_MAX_POLL_SECONDS + 3

    let_queues_idle()
    status, headers, rotated = call(latency_stack, "POST", "tenants/lat-b/keys", admin, {}, prefer="wait=0")
    assert status == 202, rotated
    assert headers["Preference-Applied"] == "wait=0" and rotated["applied"] is False
    seconds_until_key_works(latency_stack, "lat-b", rotated["apiKey"])
    assert call(latency_stack, "GET", "tenants/lat-b", created["apiKey"])[0] == 401
    print(f"a 202's key worked {applied_after:.2f} s after the answer")

    for bad in ("wait=soon", "wait=-1", "wait=" + "9" * 5000):
        status, _, error = call(latency_stack, "PUT", "tenants/lat-b", admin, {"maxGroups": 1}, prefer=bad)
        assert status == 400 and error["error"]["code"] == "InvalidPrefer", error


def test_a_task_reports_back_through_its_callback(latency_stack: LocalStack) -> None:
    admin = BatchClient(latency_stack.api_url, latency_stack.admin_key)
    created = admin.put_tenant("lat-c", QUOTA)
    assert created["applied"] is True
    client = BatchClient(latency_stack.api_url, created["apiKey"])
    let_queues_idle()
    code = "import acibatch_report as r\nr.succeeded({'ok': 1})\n"
    client.submit(python_job(code, jobId="reports"))
    job = wait_job(client, "reports", timeout=120)
    assert job["state"] == "Succeeded", job
    assert job["tasks"][0]["result"] == {"ok": 1}
