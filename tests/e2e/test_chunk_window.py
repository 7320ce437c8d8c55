"""A job larger than the region on the local stack (BATCH_TASK_WAVES on, as tests/e2e/conftest.py sets it): its
chunks start tasks in waves (`acibatch.plan.chunk_window`), so most of its tasks are not orchestrations yet while the
first ones wait for capacity, and a cancel ends the ones never started without starting them."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections import Counter

import pytest

from acibatch.aci import AciGateway
from acibatch.naming import task_instance_id
from acibatch.plan import chunk_ranges, chunk_window
from localdev.client import ApiCallError, BatchClient
from localdev.localstack import LocalStack
from tests.e2e.conftest import REGION_GROUPS, make_tenant, python_job, wait_job
from tests.e2e.test_engine import assert_no_groups_left

TENANT = "waves"
TASKS = 40


def orchestration_exists(stack: LocalStack, instance: str) -> bool:
    url = f"{stack.host_url}/runtime/webhooks/durabletask/instances/{instance}"
    request = urllib.request.Request(url, headers={"x-functions-key": stack.durable_key})
    try:
        with urllib.request.urlopen(request, timeout=30):
            return True
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return False
        raise


def test_a_big_job_starts_its_tasks_in_waves_and_a_cancel_ends_the_unstarted_without_starting_them(
    stack: LocalStack, admin: BatchClient, gateway: AciGateway
) -> None:
    client = make_tenant(admin, TENANT, maxGroups=2, maxCores=2, maxMemoryGb=4, weight=1)
    client.submit(python_job("import time; time.sleep(120)", tasks=TASKS, jobId="big", taskTimeoutSeconds=300))
    deadline = time.monotonic() + 30
    while client.job("big")["counts"]["Running"] < 2:
        assert time.monotonic() < deadline, "tasks never started"
        time.sleep(0.2)
    ids = [task_instance_id(TENANT, "big", str(index)) for index in range(TASKS)]
    window = chunk_window(TASKS, REGION_GROUPS)
    assert window is not None
    started = [instance for instance in ids if orchestration_exists(stack, instance)]
    # Each chunk holds at most its window of tasks; the rest are rows in the job's input, not orchestrations.
    assert 2 <= len(started) <= window * len(chunk_ranges(TASKS)) < TASKS

    assert client.cancel("big")["state"] == "Cancelling"
    job = wait_job(client, "big", timeout=90)
    assert job["state"] == "Cancelled"
    assert Counter(task["state"] for task in job["tasks"]) == {"Cancelled": TASKS}
    assert job["counts"]["Cancelled"] == TASKS
    never_started = [task for task in job["tasks"] if task_instance_id(TENANT, "big", task["id"]) not in started]
    assert never_started and all(task["startedAt"] is None for task in never_started)
    # A task a chunk never started says why as its `reason` (it has no record of its own); one that began after the
    # cancel, or was still queued, as its `error`.
    reasons = Counter(task.get("reason") or task.get("error") for task in never_started)
    assert set(reasons) <= {
        "the job was cancelled before this task started",
        "the job was cancelled while the task was queued",
    }, reasons
    unstarted = [task for task in never_started if "reason" in task]
    assert unstarted and all(task["reason"] == "the job was cancelled before this task started" for task in unstarted)
    # Every read of such a task says the same: the task itself, and the job's task list filtered by state.
    alone = client.task("big", unstarted[0]["id"])
    assert (alone["state"], alone["reason"]) == ("Cancelled", "the job was cancelled before this task started")
    listed = client.request("GET", "jobs/big/tasks?state=Cancelled&limit=200")
    assert listed["total"] == TASKS and {task["state"] for task in listed["tasks"]} == {"Cancelled"}
    # Its log says it will never have one, rather than that it has not started yet.
    with pytest.raises(ApiCallError) as missing:
        client.logs("big", unstarted[0]["id"])
    assert (missing.value.status, missing.value.code) == (404, "LogNotAvailable")
    assert "was never started: it ended Cancelled (the job was cancelled before this task started)" in str(
        missing.value.message
    )
    # Nothing was started for the tasks the chunks ended themselves.
    assert not any(orchestration_exists(stack, task_instance_id(TENANT, "big", task["id"])) for task in unstarted)
    assert_no_groups_left(gateway, TENANT)
