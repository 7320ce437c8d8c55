"""What a callback costs on the local stack: devhost counts the Durable client calls the endpoint makes.

A v2 token (today's) is verified from itself, then the task's record is read (without its input) and the report
raised: one read and one raise. An older attempt's v2 report is answered 200 `accepted: false` and raises nothing
(raised, it could erase the current attempt's report: `api/callbacks.py`); a v1 token (a container created by an
earlier build) works the same way and an older attempt's is refused; a report after the task has finished is
answered 200; a forged token, or one of nobody's shape, is refused with no call at all.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from acibatch.naming import task_instance_id
from acibatch.tokens import TokenFormat, callback_token
from bench.durable_api import DurableApi, wait_for_instance
from localdev.client import BatchClient
from localdev.localstack import LocalStack, local_stack
from tests.e2e.conftest import make_tenant, python_job, tasks_by_id, wait_job

pytestmark = pytest.mark.e2e

TENANT, JOB = "calls", "calls"
# Attempt 1 crashes at once, so an older attempt's token exists; attempt 2 waits for the test's reports.
CODE = "import os, sys, time\nif os.environ['BATCH_ATTEMPT'] == '1': sys.exit(3)\ntime.sleep(120)\n"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    # The lease sweep is the app's only timer and reads statuses: once a year, so only the callbacks' calls count.
    settings = {"BATCH_POLL_SECONDS": "1", "BATCH_SWEEP_SCHEDULE": "0 0 0 1 1 *"}
    with local_stack(tmp_path_factory.mktemp("calls"), settings=settings) as running:
        yield running


def post(stack: LocalStack, token: str, body: dict[str, Any]) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"{stack.api_url}/callbacks/{JOB}/0?tenant={TENANT}", data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def client_calls(durable: DurableApi) -> dict[str, int]:
    return dict(durable.get("devhost/work")["clientCalls"])


def posted(stack: LocalStack, durable: DurableApi, token: str, body: dict[str, Any]) -> tuple[int, Any, dict[str, int]]:
    """POST one callback: its status, its answer, and the Durable client calls it made (raise_event, status)."""
    before = client_calls(durable)
    status, answer = post(stack, token, body)
    after = client_calls(durable)
    made = {name: after.get(name, 0) - before.get(name, 0) for name in ("raise_event", "status")}
    return status, answer, made


def test_a_callback_is_one_read_and_one_raise_and_an_older_attempts_report_is_never_raised(stack: LocalStack) -> None:
    client = make_tenant(BatchClient(stack.api_url, stack.admin_key), TENANT)
    client.submit(python_job(CODE, jobId=JOB, maxAttempts=3, taskTimeoutSeconds=120))
    deadline = time.monotonic() + 60
    while (task := tasks_by_id(client.job(JOB))["0"])["attempts"] != 2 or task["state"] != "Running":
        assert time.monotonic() < deadline, task
        time.sleep(0.2)
    key, instance = stack.settings["BATCH_CALLBACK_SIGNING_KEY"], task_instance_id(TENANT, JOB, "0")
    durable = DurableApi.of(stack.host_url, stack.durable_key)
    current, stale = callback_token(key, instance, 2), callback_token(key, instance, 1)
    legacy = callback_token(key, instance, 2, token_format=TokenFormat.V1)
    legacy_stale = callback_token(key, instance, 1, token_format=TokenFormat.V1)

    # Today's token: verified from itself, the record read once (no input), raised once.
    assert posted(stack, durable, current, {"status": "progress", "progress": {"step": 1}}) == (
        202, {"accepted": True, "attempt": 2}, {"raise_event": 1, "status": 1}
    )  # fmt: skip
    # An older attempt's genuine report: acknowledged so its sender stops, and never raised.
    moved_on = "the report is of attempt 1; the task has moved on to attempt 2"
    assert posted(stack, durable, stale, {"status": "succeeded", "result": {"from": 1}}) == (
        200, {"accepted": False, "reason": moved_on}, {"raise_event": 0, "status": 1}
    )  # fmt: skip
    # A token minted by an earlier build names no attempt: one read learns it, and an older attempt's is refused.
    assert posted(stack, durable, legacy, {"status": "progress", "progress": {"step": 2}}) == (
        202, {"accepted": True, "attempt": 2}, {"raise_event": 1, "status": 1}
    )  # fmt: skip
    status, answer, made = posted(stack, durable, legacy_stale, {"status": "succeeded", "result": {"from": 1}})
    assert (status, answer["error"]["message"], made) == (
        403, "the token is not valid for the current attempt of this task", {"raise_event": 0, "status": 1}
    )  # fmt: skip
    # Nobody's token, or another task's: refused, nothing raised (and nothing read for a shape no token has).
    other = callback_token(key, task_instance_id(TENANT, JOB, "1"), 2)
    tampered = current[:-1] + ("B" if current[-1] == "A" else "A")
    for token in ("v2.2.forged", "garbage", other, tampered):
        status, answer, made = posted(stack, durable, token, {"status": "succeeded"})
        assert (status, made) == (403, {"raise_event": 0, "status": 0}), token
        assert key not in json.dumps(answer) and token not in json.dumps(answer)  # says what is wrong, no secret

    time.sleep(2)  # two polls: the older attempt's success ended nothing
    still = tasks_by_id(client.job(JOB))["0"]
    assert (still["state"], still["attempts"]) == ("Running", 2)

    assert post(stack, current, {"status": "succeeded", "exitCode": 0, "result": {"from": 2}}) == (
        202, {"accepted": True, "attempt": 2}
    )  # fmt: skip
    job = wait_job(client, JOB, timeout=60)
    assert (job["state"], job["tasks"][0]["result"], job["tasks"][0]["attempts"]) == ("Succeeded", {"from": 2}, 2)
    wait_for_instance(durable, instance)
    # A repeat after the task has finished: its record says so, and nothing is raised.
    assert posted(stack, durable, current, {"status": "succeeded", "exitCode": 0, "result": {"from": 2}}) == (
        200, {"accepted": False, "reason": "the task has already finished"}, {"raise_event": 0, "status": 1}
    )  # fmt: skip
    assert tasks_by_id(client.job(JOB))["0"]["result"] == {"from": 2}
