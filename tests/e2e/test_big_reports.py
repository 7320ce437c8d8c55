"""A task that logs and reports a lot keeps its orchestration's custom status under the extension's 16 KB.

devhost fails an orchestration whose custom status is over 16 KB in UTF-16, as the Durable extension does in
Azure, so this job only succeeds if the task orchestrator's live view stays small however much the task says.
"""

from __future__ import annotations

import time

import pytest

from acibatch.records import PROGRESS_OMITTED
from localdev.client import BatchClient
from tests.e2e.conftest import make_tenant, python_job, tasks_by_id, wait_job

pytestmark = pytest.mark.e2e

LOUD = """
import sys, time, acibatch_report as r
for n in range(1024):
    print(f"line {n:04d} " + "x" * 53)  # 64 KB of log
sys.stdout.flush()
r.progress({"blob": "p" * 15 * 1024})
time.sleep(2)
r.succeeded({"blob": "r" * 15 * 1024})
"""


def test_a_task_that_logs_64_kb_and_reports_15_kb_twice_succeeds(admin: BatchClient) -> None:
    client = make_tenant(admin, "loud")
    job_id = client.submit(python_job(LOUD, jobId="loud-1"))["jobId"]
    deadline = time.monotonic() + 60
    while True:  # the live view shows that a progress report came, not its 15 KB
        task = tasks_by_id(client.job(job_id))["0"]
        if task["progress"] is not None or task["state"] not in {"Queued", "Running"}:
            break
        assert time.monotonic() < deadline, task
        time.sleep(0.2)
    if task["state"] == "Running":
        assert task["progress"] == {"omitted": PROGRESS_OMITTED}
    job = wait_job(client, job_id)
    assert job["state"] == "Succeeded", job
    task = tasks_by_id(job)["0"]
    assert task["result"] == {"blob": "r" * 15 * 1024}
    assert task["progress"] == {"blob": "p" * 15 * 1024}
    log = client.logs(job_id, "0")
    assert log["content"].rstrip().endswith("line 1023 " + "x" * 53)
