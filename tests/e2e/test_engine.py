"""The batch engine end to end: devhost runs the app, aciemu runs the containers, real HTTP throughout."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from datetime import datetime
from typing import Any

import pytest

from acibatch.aci import AciGateway, GroupRequest
from acibatch.naming import task_instance_id
from acibatch.tokens import TokenFormat, callback_token
from localdev.client import ApiCallError, BatchClient
from localdev.localstack import LocalStack
from tests.e2e.conftest import REGION_GROUPS, make_tenant, python_job, tasks_by_id, wait_job, wait_no_groups

pytestmark = pytest.mark.e2e


def tenant_groups(gateway: AciGateway, tenant: str) -> list[str]:
    return [group.name for group in gateway.list_app_groups() if group.tags.get("tenant") == tenant]


def assert_no_groups_left(gateway: AciGateway, tenant: str) -> None:
    deadline = time.monotonic() + 20
    while tenant_groups(gateway, tenant) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert tenant_groups(gateway, tenant) == []


def test_multi_task_job_succeeds_with_every_result(admin: BatchClient, gateway: AciGateway) -> None:
    client = make_tenant(admin, "basic", maxGroups=3, maxCores=3, maxMemoryGb=6, weight=1)
    code = "import os, acibatch_report as r\ni = int(os.environ['BATCH_TASK_INDEX'])\nr.succeeded({'square': i * i})\n"
    accepted = client.submit(python_job(code, tasks=6, jobId="squares"))
    assert accepted["jobId"] == "squares"
    assert accepted["statusUrl"].endswith("/api/jobs/squares")
    job = wait_job(client, "squares")
    assert job["state"] == "Succeeded"
    assert job["counts"]["Succeeded"] == 6
    for index, task in enumerate(job["tasks"]):
        assert task["id"] == str(index)
        assert task["result"] == {"square": index * index}
        assert task["attempts"] == 1
        assert task["groupName"] and task["startedAt"] and task["finishedAt"]
    assert_no_groups_left(gateway, "basic")
    usage = admin.get_tenant("basic")["usage"]
    assert usage["tasks"]["succeeded"] == 6
    assert usage["coreSeconds"] > 0


def test_failing_task_is_retried_then_reported_failed_with_exit_code_and_log(
    admin: BatchClient, gateway: AciGateway
) -> None:
    client = make_tenant(admin, "failing")
    code = (
        "import os, sys, acibatch_report as r\n"
        "print('diagnostic: attempt', os.environ['BATCH_ATTEMPT'], flush=True)\n"
        "r.failed('bad input', 4)\n"
        "sys.exit(4)\n"
    )
    client.submit(python_job(code, jobId="fails", maxAttempts=2))
    job = wait_job(client, "fails")
    assert job["state"] == "Failed"
    task = job["tasks"][0]
    assert task["state"] == "Failed"
    assert task["attempts"] == 2
    assert task["exitCode"] == 4
    assert "bad input" in (task["error"] or "")
    log = client.logs("fails", "0")
    assert "diagnostic: attempt 2" in log["content"]
    assert_no_groups_left(gateway, "failing")


def test_container_that_never_calls_back_finishes_by_polling(admin: BatchClient, gateway: AciGateway) -> None:
    client = make_tenant(admin, "silent")
    client.submit(python_job("print('done, no callback')", jobId="quiet-ok"))
    client.submit(python_job("import sys; sys.exit(5)", jobId="quiet-fail", maxAttempts=1))
    ok, failed = wait_job(client, "quiet-ok"), wait_job(client, "quiet-fail")
    assert ok["state"] == "Succeeded"
    assert ok["tasks"][0]["exitCode"] == 0
    assert ok["tasks"][0]["result"] is None
    assert failed["state"] == "Failed"
    assert failed["tasks"][0]["exitCode"] == 5
    assert_no_groups_left(gateway, "silent")


REPEATS_ITS_REPORTS = """
import os, time, acibatch_report as r
if os.environ["BATCH_ATTEMPT"] == "1":
    r.failed("first try", exit_code=4); r.failed("first try", exit_code=4)  # a report sent twice
    raise SystemExit(4)
r.progress({"step": 1}); r.progress({"step": 1}); time.sleep(0.5)
r.succeeded({"attempt": 2})
time.sleep(30)
"""


def test_repeated_reports_are_harmless_on_the_next_attempt(admin: BatchClient, gateway: AciGateway) -> None:
    # The SDK gives an event that arrived while nothing waited for it to every later waiter of that name: a
    # repeated report must not be read again and again (that recursed until the orchestration crashed).
    client = make_tenant(admin, "repeats")
    client.submit(python_job(REPEATS_ITS_REPORTS, jobId="repeats", maxAttempts=2))
    job = wait_job(client, "repeats", timeout=60)
    assert job["state"] == "Succeeded", job["tasks"][0]
    task = job["tasks"][0]
    assert task["attempts"] == 2 and task["result"] == {"attempt": 2}
    assert_no_groups_left(gateway, "repeats")


def test_hung_task_is_stopped_at_its_timeout(admin: BatchClient, gateway: AciGateway) -> None:
    client = make_tenant(admin, "hung")
    started = time.monotonic()
    client.submit(python_job("import time; time.sleep(300)", jobId="sleeper", maxAttempts=1, taskTimeoutSeconds=3))
    job = wait_job(client, "sleeper", timeout=60)
    assert time.monotonic() - started < 40
    task = job["tasks"][0]
    assert job["state"] == "Failed"
    assert "taskTimeoutSeconds=3" in task["error"]
    assert_no_groups_left(gateway, "hung")


def test_cancel_mid_job_stops_running_groups_and_never_starts_queued_tasks(
    admin: BatchClient, gateway: AciGateway
) -> None:
    client = make_tenant(admin, "cancelled", maxGroups=2, maxCores=2, maxMemoryGb=4, weight=1)
    client.submit(python_job("import time; time.sleep(120)", tasks=5, jobId="long"))
    deadline = time.monotonic() + 30
    while client.job("long")["counts"]["Running"] < 2:
        assert time.monotonic() < deadline, "tasks never started"
        time.sleep(0.2)
    assert len(tenant_groups(gateway, "cancelled")) == 2
    answer = client.cancel("long")
    assert answer["state"] == "Cancelling"
    job = wait_job(client, "long", timeout=60)
    assert job["state"] == "Cancelled"
    assert Counter(task["state"] for task in job["tasks"]) == {"Cancelled": 5}
    never_started = [task for task in job["tasks"] if task["startedAt"] is None]
    assert len(never_started) == 3
    assert_no_groups_left(gateway, "cancelled")
    with pytest.raises(ApiCallError) as again:
        client.cancel("long")
    assert again.value.status == 409


def post_callback(stack: LocalStack, tenant: str, job: str, task: str, token: str | None, body: bytes) -> int:
    url = f"{stack.api_url}/callbacks/{job}/{task}?tenant={tenant}"
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as error:
        return error.code


def test_callback_tokens_of_other_tasks_and_older_attempts_are_refused(
    stack: LocalStack, admin: BatchClient, gateway: AciGateway
) -> None:
    client = make_tenant(admin, "tokens")
    # Attempt 1 crashes at once; attempt 2 waits for the test to complete it through its callback.
    code = "import os, sys, time\nif os.environ['BATCH_ATTEMPT'] == '1': sys.exit(3)\ntime.sleep(120)\n"
    client.submit(python_job(code, tasks=2, jobId="tok", maxAttempts=3))
    deadline = time.monotonic() + 40
    while True:
        tasks = tasks_by_id(client.job("tok"))
        if tasks["0"]["attempts"] == 2 and tasks["0"]["state"] == "Running":
            break
        assert time.monotonic() < deadline, tasks
        time.sleep(0.2)
    key = stack.settings["BATCH_CALLBACK_SIGNING_KEY"]
    instance = task_instance_id("tokens", "tok", "0")
    success = b'{"status": "succeeded", "result": {"via": "test"}}'
    assert post_callback(stack, "tokens", "tok", "0", None, success) == 401
    assert post_callback(stack, "tokens", "tok", "0", "garbage", success) == 403
    # A v1 token (minted by earlier builds) is checked against the live record: an older attempt's is refused. Today's
    # v2 tokens name their attempt, so an older attempt's report is accepted and ignored (test_callback_calls.py).
    older = callback_token(key, instance, 1, token_format=TokenFormat.V1)
    assert post_callback(stack, "tokens", "tok", "0", older, success) == 403
    other = callback_token(key, task_instance_id("tokens", "tok", "1"), 2)
    assert post_callback(stack, "tokens", "tok", "0", other, success) == 403
    assert post_callback(stack, "other", "tok", "0", callback_token(key, instance, 2), success) == 403
    time.sleep(2)  # nothing was raised: the task is still running
    assert tasks_by_id(client.job("tok"))["0"]["state"] == "Running"

    current = callback_token(key, instance, 2)
    assert post_callback(stack, "tokens", "tok", "0", current, b'{"status": "bogus"}') == 400
    assert post_callback(stack, "tokens", "tok", "0", current, success) == 202
    deadline = time.monotonic() + 30
    while tasks_by_id(client.job("tok"))["0"]["state"] != "Succeeded":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert tasks_by_id(client.job("tok"))["0"]["result"] == {"via": "test"}
    # A repeat is harmless: 200 once the task's orchestration has completed (the host's 410), 202 while it is still
    # finishing up (the report is raised, and a finished task ignores it).
    assert post_callback(stack, "tokens", "tok", "0", current, success) in (200, 202)
    assert tasks_by_id(client.job("tok"))["0"]["result"] == {"via": "test"}
    client.cancel("tok")
    assert wait_job(client, "tok")["state"] == "Cancelled"
    assert_no_groups_left(gateway, "tokens")


def test_quotas_hold_and_the_small_tenant_is_not_starved(admin: BatchClient, gateway: AciGateway) -> None:
    big = make_tenant(admin, "big", maxGroups=4, maxCores=4, maxMemoryGb=8, weight=1)
    small = make_tenant(admin, "small", maxGroups=2, maxCores=2, maxMemoryGb=4, weight=1)
    code = "import time, acibatch_report as r; time.sleep(2); r.succeeded()"
    samples: list[Counter[str]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            groups = gateway.list_app_groups()
            samples.append(Counter(group.tags.get("tenant", "") for group in groups))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        big.submit(python_job(code, tasks=12, jobId="flood"))
        time.sleep(1.5)
        small.submit(python_job(code, tasks=3, jobId="trickle"))
        big_job, small_job = wait_job(big, "flood", timeout=120), wait_job(small, "trickle", timeout=120)
    finally:
        stop.set()
        sampler.join()
    assert big_job["state"] == small_job["state"] == "Succeeded"
    assert samples
    assert max(sample["big"] for sample in samples) <= 4
    assert max(sample["small"] for sample in samples) <= 2
    assert max(sum(sample.values()) for sample in samples) <= REGION_GROUPS

    def started(task: dict[str, Any]) -> datetime:
        return datetime.fromisoformat(task["startedAt"].replace("Z", "+00:00"))

    # Fair share: the small tenant's tasks all start while the big tenant still has work waiting.
    last_small_start = max(started(task) for task in small_job["tasks"])
    last_big_start = max(started(task) for task in big_job["tasks"])
    assert last_small_start < last_big_start

    for name, job in (("big", big_job), ("small", small_job)):
        info = admin.get_tenant(name)
        assert info["usage"]["tasks"]["succeeded"] == len(job["tasks"])
        assert info["running"]["groups"] == 0
        assert info["queued"] == 0
        runtime = sum(
            (datetime.fromisoformat(task["finishedAt"].replace("Z", "+00:00")) - started(task)).total_seconds()
            for task in job["tasks"]
        )
        # Usage is billed per lease (create to delete), so it is at least the tasks' run time.
        assert runtime * 0.8 <= info["usage"]["coreSeconds"] <= runtime * 3 + 10
    assert wait_no_groups(gateway) == []


def add_fault(stack: LocalStack, rule: dict[str, Any]) -> None:
    request = urllib.request.Request(
        f"{stack.aci_url}/_emulator/faults", data=json.dumps(rule).encode(), method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {stack.aci_token}"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201


def test_spot_eviction_is_recovered_on_regular_priority(
    stack: LocalStack, admin: BatchClient, gateway: AciGateway
) -> None:
    client = make_tenant(admin, "spotty")
    add_fault(
        stack,
        {"op": "create", "fault": "evict", "afterSeconds": 0.5, "match": {"name": "spotty-*"}, "count": 1},
    )
    code = "import time, acibatch_report as r; time.sleep(2); r.succeeded({'done': True})"
    client.submit(python_job(code, jobId="preempt", priority="Spot", maxAttempts=1))
    job = wait_job(client, "preempt")
    task = job["tasks"][0]
    assert job["state"] == "Succeeded"
    assert task["attempts"] == 2  # the evicted Spot attempt, then the Regular fallback
    assert task["result"] == {"done": True}
    assert_no_groups_left(gateway, "spotty")


def test_orphan_sweep_deletes_groups_nobody_owns(gateway: AciGateway) -> None:
    orphan = GroupRequest(
        name="ghost-orphan-a1", tenant="ghost", job_id="j", task_id="0", attempt=1, owner="task:ghost:j:0",
        image="python:3", command=("sleep", "60"), env={}, secure_env={}, cpu=0.5, memory_gb=0.5,
        priority="Regular", created_at=int(time.time()) - 3600, location="westeurope",
    )  # fmt: skip
    gateway.create(orphan, None)
    assert "ghost-orphan-a1" in tenant_groups(gateway, "ghost")
    assert_no_groups_left(gateway, "ghost")
