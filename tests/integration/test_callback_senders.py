"""The agent's token, end to end on the storage stack (devhost runs the app, aciemu the task and its agent): the
task's code cannot report `completed` with its own token (so it cannot end its attempt before the uploads), the
agent's token cannot report for the task, and the agent, with its own token, still ends the attempt."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

import pytest

from acibatch.naming import task_instance_id
from acibatch.tokens import TokenPurpose, callback_token
from localdev.client import BatchClient
from localdev.localstack import LocalStack
from tests.e2e.conftest import make_tenant, python_job, wait_job

pytestmark = [pytest.mark.e2e, pytest.mark.azurite]

# The task posts the agent's report with its own token and keeps the HTTP status it got as its output; then it
# waits for the test to probe the API while it runs.
IMPERSONATES = """
import json, os, pathlib, time, urllib.error, urllib.request
body = json.dumps({"status": "completed", "exitCode": 0, "outputs": {"count": 0, "bytes": 0}, "failure": None})
request = urllib.request.Request(os.environ["BATCH_CALLBACK_URL"], data=body.encode(), method="POST", headers={
    "Authorization": "Bearer " + os.environ["BATCH_CALLBACK_TOKEN"], "Content-Type": "application/json"})
try:
    status = urllib.request.urlopen(request, timeout=30).status
except urllib.error.HTTPError as error:
    status = error.code
pathlib.Path(os.environ["AZ_BATCH_TASK_WORKING_DIR"], "status.txt").write_text(str(status))
time.sleep(6)
"""


def post(stack: LocalStack, job: str, token: str, body: bytes) -> tuple[int, str]:
    request = urllib.request.Request(
        f"{stack.api_url}/callbacks/{job}/0?tenant=dave", data=body, method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_only_the_agent_may_report_completed_and_only_the_task_its_own_reports(stack: LocalStack) -> None:
    dave = make_tenant(BatchClient(stack.api_url, stack.admin_key), "dave")
    outputs = [{"filePattern": "status.txt"}]
    dave.submit(python_job(IMPERSONATES, jobId="senders", maxAttempts=1, outputFiles=outputs))
    deadline = time.monotonic() + 60
    while dave.task("senders", "0")["state"] != "Running":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    key = stack.settings["BATCH_CALLBACK_SIGNING_KEY"]
    instance = task_instance_id("dave", "senders", "0")
    agent = callback_token(key, instance, 1, TokenPurpose.AGENT)
    task = callback_token(key, instance, 1)
    status, text = post(stack, "senders", agent, b'{"status": "succeeded", "result": {"forged": true}}')
    assert status == 403 and "may only report 'completed'" in text
    status, text = post(stack, "senders", task, b'{"status": "completed", "exitCode": 0}')
    assert status == 403 and "only the acibatch agent may report 'completed'" in text
    job = wait_job(dave, "senders", timeout=120)
    [done] = job["tasks"]
    assert (done["state"], done["attempts"], done.get("result")) == ("Succeeded", 1, None)
    # The task's own attempt at `completed` was refused too, and its attempt went on to upload its output.
    [listed] = dave.task_files("senders", "0")["files"]
    with dave.open_file("senders", "0", listed["name"]) as response:
        assert response.read() == b"403"
