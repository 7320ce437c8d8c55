"""What a callback costs on the local stack: devhost counts the Durable client calls the endpoint makes.

A task of a job submitted with BATCH_CALLBACK_EVENTS=perAttempt (this module's stack) waits for each attempt's
reports under that attempt's own event name, and its containers hold v3 tokens: a report is verified from its token
and raised, one raise and no read. An older attempt's report lands under a name the task no longer waits for, so it
never takes the place of the current attempt's report, whichever comes last; a report after the task has finished is
refused by the host's raise and answered 200 `accepted: false`; a forged token, or one of nobody's shape, is refused
with no call at all.

A task that waits under the shared name (the default BATCH_CALLBACK_EVENTS=shared, and every instance started before
per-attempt names: started here through the Durable API with the input such a chunk gives it) keeps the read for its
v2 and v1 tokens: one read and one raise; an older attempt's v2 report is answered 200 `accepted: false` and raises
nothing (it could erase the current attempt's report under the shared name), an older attempt's v1 token is refused;
after the end, one read.
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
from acibatch.plan import JobInput, task_inputs
from acibatch.spec import parse_job_spec
from acibatch.tokens import TokenFormat, callback_token
from bench.durable_api import DurableApi, wait_for_instance
from localdev.client import BatchClient
from localdev.localstack import LocalStack, local_stack
from tests.e2e.conftest import make_tenant, python_job, tasks_by_id, wait_job

pytestmark = pytest.mark.e2e

TENANT, JOB, LEGACY = "calls", "calls", "legacy"
# Attempt 1 crashes at once, so an older attempt's token exists; attempt 2 waits for the test's reports.
CODE = "import os, sys, time\nif os.environ['BATCH_ATTEMPT'] == '1': sys.exit(3)\ntime.sleep(120)\n"
REFUSED = "the token is not valid for the current attempt of this task"
FINISHED = {"accepted": False, "reason": "the task has already finished"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    # The lease sweep is the app's only timer and reads statuses: once a year, so only the callbacks' calls count.
    settings = {"BATCH_POLL_SECONDS": "1", "BATCH_SWEEP_SCHEDULE": "0 0 0 1 1 *", "BATCH_CALLBACK_EVENTS": "perAttempt"}
    with local_stack(tmp_path_factory.mktemp("calls"), settings=settings) as running:
        yield running


@pytest.fixture(scope="module")
def client(stack: LocalStack) -> BatchClient:
    return make_tenant(BatchClient(stack.api_url, stack.admin_key), TENANT)


def post(stack: LocalStack, token: str, body: dict[str, Any], job: str = JOB) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"{stack.api_url}/callbacks/{job}/0?tenant={TENANT}", data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def client_calls(durable: DurableApi) -> dict[str, int]:
    return dict(durable.get("devhost/work")["clientCalls"])


def posted(
    stack: LocalStack, durable: DurableApi, token: str, body: dict[str, Any], job: str = JOB
) -> tuple[int, Any, dict[str, int]]:
    """POST one callback: its status, its answer, and the Durable client calls it made (raise_event, status)."""
    before = client_calls(durable)
    status, answer = post(stack, token, body, job)
    after = client_calls(durable)
    made = {name: after.get(name, 0) - before.get(name, 0) for name in ("raise_event", "status")}
    return status, answer, made


ONE_RAISE = {"raise_event": 1, "status": 0}
READ_AND_RAISE = {"raise_event": 1, "status": 1}
READ_ONLY = {"raise_event": 0, "status": 1}
NO_CALL = {"raise_event": 0, "status": 0}


def test_a_v3_report_is_one_raise_and_an_older_attempts_never_takes_the_current_ones_place(
    stack: LocalStack, client: BatchClient
) -> None:
    client.submit(python_job(CODE, jobId=JOB, maxAttempts=3, taskTimeoutSeconds=120))
    deadline = time.monotonic() + 60
    while (task := tasks_by_id(client.job(JOB))["0"])["attempts"] != 2 or task["state"] != "Running":
        assert time.monotonic() < deadline, task
        time.sleep(0.2)
    key, instance = stack.settings["BATCH_CALLBACK_SIGNING_KEY"], task_instance_id(TENANT, JOB, "0")
    durable = DurableApi.of(stack.host_url, stack.durable_key)
    current = callback_token(key, instance, 2, token_format=TokenFormat.V3)
    stale = callback_token(key, instance, 1, token_format=TokenFormat.V3)
    assert current.startswith("v3.2.")

    # Verified from itself and raised under its attempt's name: nothing read.
    assert posted(stack, durable, current, {"status": "progress", "progress": {"step": 1}}) == (
        202, {"accepted": True, "attempt": 2}, ONE_RAISE
    )  # fmt: skip
    # Nobody's token, or another task's: refused with no call at all.
    other = callback_token(key, task_instance_id(TENANT, JOB, "1"), 2, token_format=TokenFormat.V3)
    tampered = current[:-1] + ("B" if current[-1] == "A" else "A")
    relabelled = current.replace("v3.2.", "v3.3.", 1)
    for token in ("v3.2.forged", "garbage", other, tampered, relabelled):
        status, answer, made = posted(stack, durable, token, {"status": "succeeded"})
        assert (status, answer["error"]["message"], made) == (403, REFUSED, NO_CALL), token
        assert key not in json.dumps(answer)  # says what is wrong, no secret
    # An older attempt's v1 token is still learnt from one read, and refused.
    legacy_stale = callback_token(key, instance, 1, token_format=TokenFormat.V1)
    status, answer, made = posted(stack, durable, legacy_stale, {"status": "succeeded", "result": {"from": 1}})
    assert (status, answer["error"]["message"], made) == (403, REFUSED, READ_ONLY)

    # The current attempt's report, then a leaked container of attempt 1 reporting success: both raised, one each,
    # and the stale one, under attempt 1's name, never replaces the current one.
    assert posted(stack, durable, current, {"status": "succeeded", "exitCode": 0, "result": {"from": 2}}) == (
        202, {"accepted": True, "attempt": 2}, ONE_RAISE
    )  # fmt: skip
    assert posted(stack, durable, stale, {"status": "succeeded", "exitCode": 0, "result": {"from": 1}}) == (
        202, {"accepted": True, "attempt": 1}, ONE_RAISE
    )  # fmt: skip
    job = wait_job(client, JOB, timeout=60)
    assert (job["state"], job["tasks"][0]["result"], job["tasks"][0]["attempts"]) == ("Succeeded", {"from": 2}, 2)
    wait_for_instance(durable, instance)
    # After the end: the host refuses the raise (410), which alone answers it.
    for token in (current, stale):
        assert posted(stack, durable, token, {"status": "succeeded", "exitCode": 0, "result": {"late": True}}) == (
            200, FINISHED, ONE_RAISE
        )  # fmt: skip
    assert tasks_by_id(client.job(JOB))["0"]["result"] == {"from": 2}


def started_before_per_attempt_names(stack: LocalStack, durable: DurableApi) -> str:
    """A task orchestration started with the input a chunk gave tasks before per-attempt names (the bare task), as
    an instance in flight across the deploy has it; returns its instance id."""
    parsed = parse_job_spec(python_job(CODE, jobId=LEGACY, maxAttempts=3, taskTimeoutSeconds=120))
    job = JobInput(
        tenant=TENANT, job_id=LEGACY, spec=parsed.to_dict(), sealed_secure_env=None, fingerprint=parsed.fingerprint(),
        submitted_at="2026-01-05T08:59:00.000000Z", poll_seconds=1.0,
    )  # fmt: skip
    [task] = task_inputs(job, parsed, 0, 1)
    assert "callbackEvents" not in task.to_dict()
    durable.post(f"orchestrators/task_orchestrator/{task.instance_id}", task.to_dict())
    return task.instance_id


def live_record(durable: DurableApi, instance: str) -> dict[str, Any]:
    status = durable.get(f"instances/{instance}?showInput=false")
    return dict(status.get("customStatus") or {})


def test_a_task_started_before_per_attempt_names_keeps_the_read_for_its_v2_and_v1_tokens(
    stack: LocalStack, client: BatchClient
) -> None:
    durable = DurableApi.of(stack.host_url, stack.durable_key)
    instance = started_before_per_attempt_names(stack, durable)
    deadline = time.monotonic() + 60
    while (record := live_record(durable, instance)).get("attempt") != 2 or record.get("state") != "Running":
        assert time.monotonic() < deadline, record
        time.sleep(0.2)
    key = stack.settings["BATCH_CALLBACK_SIGNING_KEY"]
    current = callback_token(key, instance, 2, token_format=TokenFormat.V2)
    stale = callback_token(key, instance, 1, token_format=TokenFormat.V2)
    legacy = callback_token(key, instance, 2, token_format=TokenFormat.V1)
    legacy_stale = callback_token(key, instance, 1, token_format=TokenFormat.V1)

    assert posted(stack, durable, current, {"status": "progress", "progress": {"step": 1}}, LEGACY) == (
        202, {"accepted": True, "attempt": 2}, READ_AND_RAISE
    )  # fmt: skip
    # An older attempt's genuine report: acknowledged so its sender stops, and never raised.
    moved_on = "the report is of attempt 1; the task has moved on to attempt 2"
    assert posted(stack, durable, stale, {"status": "succeeded", "result": {"from": 1}}, LEGACY) == (
        200, {"accepted": False, "reason": moved_on}, READ_ONLY
    )  # fmt: skip
    assert posted(stack, durable, legacy, {"status": "progress", "progress": {"step": 2}}, LEGACY) == (
        202, {"accepted": True, "attempt": 2}, READ_AND_RAISE
    )  # fmt: skip
    status, answer, made = posted(stack, durable, legacy_stale, {"status": "succeeded"}, LEGACY)
    assert (status, answer["error"]["message"], made) == (403, REFUSED, READ_ONLY)
    # A v2 token relabelled v3 (to skip the read) is nobody's: each format signs in its own domain.
    status, _, made = posted(stack, durable, current.replace("v2.", "v3.", 1), {"status": "succeeded"}, LEGACY)
    assert (status, made) == (403, NO_CALL)

    time.sleep(2)  # two polls: the older attempt's success ended nothing
    assert (live_record(durable, instance)["state"], live_record(durable, instance)["attempt"]) == ("Running", 2)
    assert post(stack, current, {"status": "succeeded", "exitCode": 0, "result": {"from": 2}}, LEGACY) == (
        202, {"accepted": True, "attempt": 2}
    )  # fmt: skip
    wait_for_instance(durable, instance)
    # The last generation's input holds the final record (the custom status leaves the result out).
    given = durable.get(f"instances/{instance}?showInput=true")["input"]
    final = (json.loads(given) if isinstance(given, str) else given)["final"]  # the host may hand it back as text
    assert (final["state"], final["result"], final["attempts"]) == ("Succeeded", {"from": 2}, 2)
    # A repeat after the task has finished: its record says so, and nothing is raised.
    assert posted(stack, durable, current, {"status": "succeeded", "exitCode": 0}, LEGACY) == (
        200, FINISHED, READ_ONLY
    )  # fmt: skip
