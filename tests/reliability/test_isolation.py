"""Issue 21: no single failure fails a job or leaks capacity, on the local stack with aciemu's fault injection.

One task's group that can never be read, and creates that fail with 500 past the ARM client's own retries: the
job still ends normally, every task has one final outcome with a reason, the job's notifyUrl is called, and no
container group and no capacity lease is left behind.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from acibatch.naming import container_group_name
from localdev.client import BatchClient
from tests.httpserve import serving_on_a_thread
from tests.reliability.test_crash_and_faults import TERMINAL, Stack, add_faults, job, stack, wait_done

pytestmark = pytest.mark.e2e

# The ARM client does not retry a create's error status (acibatch.aci.WRITES_RETRY_STATUS): each failing create
# activity is one refused PUT, and the task's own policy re-creates. Two in a row per failing task.
CREATE_FAILURES = 2


class Notifications(HTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), NotifyHandler)
        self.received: list[dict[str, Any]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/done"


class NotifyHandler(BaseHTTPRequestHandler):
    server: Notifications

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.server.received.append(json.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def notified_stack(tmp_path: Path) -> Iterator[tuple[Stack, Notifications]]:
    with serving_on_a_thread(Notifications()) as receiver:
        port = receiver.server_address[1]
        extra = {"BATCH_OUTBOUND_ALLOW_HTTP": "true", "BATCH_OUTBOUND_ALLOW": f"127.0.0.1:{port}"}
        with stack(tmp_path, ["--fault-seed", "3"], extra) as running:
            yield running, receiver


def tenant_client(running: Stack, tenant: str) -> tuple[BatchClient, BatchClient]:
    admin = BatchClient(running.api, running.settings["BATCH_ADMIN_KEY"])
    key = admin.put_tenant(tenant, {"maxGroups": 4, "maxCores": 4, "maxMemoryGb": 8})["apiKey"]
    return admin, BatchClient(running.api, key)


def assert_left_clean(running: Stack, admin: BatchClient, tenant: str) -> None:
    deadline = time.monotonic() + 30
    while running.gateway().list_app_groups() and time.monotonic() < deadline:
        time.sleep(0.3)
    assert running.gateway().list_app_groups() == []
    info = admin.get_tenant(tenant)
    assert info["running"]["groups"] == 0 and info["queued"] == 0, info


def wait_notified(receiver: Notifications, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while not receiver.received:
        assert time.monotonic() < deadline, "notifyUrl was never called"
        time.sleep(0.2)
    return receiver.received[0]


def test_a_group_that_can_never_be_read_ends_its_attempt_not_the_job(tmp_path: Path) -> None:
    with notified_stack(tmp_path) as (running, receiver):
        admin, client = tenant_client(running, "unreadable")
        # Task 0's first group answers 500 to every read; its container exits 0 without calling back, so only
        # polling (which cannot read it) could tell how it ended.
        blind = container_group_name("unreadable", "work", "0", 1)
        add_faults(running.emulator, [{"op": "get", "match": {"name": blind}, "fault": "error", "status": 500,
                                       "code": "InternalServerError", "message": "injected"}])  # fmt: skip
        client.submit(job(3, "import time; time.sleep(0.5)", notifyUrl=receiver.url))
        body = wait_done(client, timeout=120)
        tasks = {task["id"]: task for task in body["tasks"]}
        assert all(task["state"] in TERMINAL for task in tasks.values())
        assert body["state"] == "Succeeded", tasks
        assert tasks["0"]["attempts"] == 2  # the unreadable attempt was given up, the next one succeeded
        assert "could not be read" in tasks["0"]["error"] and "InternalServerError" in tasks["0"]["error"]
        notification = wait_notified(receiver)
        assert (notification["jobId"], notification["state"]) == ("work", "Succeeded")
        assert_left_clean(running, admin, "unreadable")


def test_creates_failing_past_the_client_retries_are_retried_by_the_task(tmp_path: Path) -> None:
    tasks = 10
    with notified_stack(tmp_path) as (running, receiver):
        admin, client = tenant_client(running, "flaky")
        # 30% of the tasks: their first two creates fail with 500, past anything the ARM client retries.
        failing = [str(n) for n in range(0, tasks, 3)]
        add_faults(running.emulator, [
            {"op": "create", "match": {"name": container_group_name("flaky", "work", task, 1)}, "fault": "error",
             "status": 500, "code": "InternalServerError", "message": "injected", "count": CREATE_FAILURES}
            for task in failing
        ])  # fmt: skip
        client.submit(job(tasks, "import acibatch_report as r; r.succeeded({'ok': True})", notifyUrl=receiver.url))
        body = wait_done(client, timeout=120)
        by_id = {task["id"]: task for task in body["tasks"]}
        assert body["state"] == "Succeeded" and all(task["state"] == "Succeeded" for task in by_id.values())
        for task in failing:  # retried within the same attempt: the error is kept as the last one, not a failure
            assert by_id[task]["attempts"] == 1 and "InternalServerError" in by_id[task]["error"], by_id[task]
        assert wait_notified(receiver)["counts"]["Succeeded"] == tasks
        assert_left_clean(running, admin, "flaky")
