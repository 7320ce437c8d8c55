"""Property-based fuzzing of every route on the local stack: whatever arrives, the answer is never a 5xx.

Hypothesis sends JSON of every type (top level and inside each known field), bytes that are not JSON, and
wrong content types, with path segments and query values of any text, to each route with a key that gets
past authentication, so the validators behind it are what is exercised. Callbacks carry the real token of a
running task. Every 4xx must be the error envelope with a message; every 2xx must be JSON.
Also here: the API contract points this work settled (idempotent resubmission, `limit=0` paging).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acibatch.callbacks import MAX_JSON_DEPTH, CallbackStatus
from acibatch.naming import TENANT_RULE, task_instance_id
from acibatch.spec import JOB_FIELDS, TASK_FIELDS
from acibatch.tokens import callback_token
from localdev.client import ApiCallError, BatchClient
from localdev.localstack import LocalStack
from tests.e2e.conftest import make_tenant, python_job

pytestmark = pytest.mark.e2e

TENANT = "fuzz"
QUOTA_TENANT = "fuzz-quota"  # the only valid tenant id the admin routes are fuzzed with (PUT creates it)
LIVE_JOB = "fuzz-live"
EXAMPLES = 250
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip

# Every value json.loads can return, with integers too large for a float and floats that overflow to inf.
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([10**400, -(10**400), 2**63, 1e308])
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    # Near misses that reach deeper into the validators than random text does.
    | st.sampled_from(["Regular", "stop", "progress", "python", "job\n", "https://[::1", "http://[x", "a" * 70])
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)
JOB_SHAPED = st.fixed_dictionaries(
    {},
    optional={
        **dict.fromkeys(JOB_FIELDS, JSON_VALUES),
        "tasks": st.lists(
            st.fixed_dictionaries({}, optional=dict.fromkeys(TASK_FIELDS, JSON_VALUES)) | JSON_VALUES, max_size=3
        ),
    },
)
CALLBACK_SHAPED = st.fixed_dictionaries(
    {},
    optional={
        "status": JSON_VALUES | st.sampled_from([str(CallbackStatus.PROGRESS), "succeeded "]),
        "exitCode": JSON_VALUES,
        "message": JSON_VALUES,
        "progress": JSON_VALUES,
        "result": JSON_VALUES,
    },
)
QUOTA_SHAPED = st.fixed_dictionaries(
    {}, optional=dict.fromkeys(["maxGroups", "maxCores", "maxMemoryGb", "weight"], JSON_VALUES)
)
CONTENT_TYPES = st.sampled_from(
    [None, "application/json", "application/json; charset=utf-8", "text/plain", "application/x-www-form-urlencoded",
     "multipart/form-data; boundary=x", "application/xml", "application/octet-stream"]
)  # fmt: skip
NOT_JSON = st.binary(max_size=64) | st.sampled_from([b"{", b"NaN", b'{"a": Infinity}', b"\xff\xfe", b"[" * 5000])
SEGMENTS = st.text(min_size=1, max_size=30) | st.sampled_from(["..", "%", "a\nb", "0", "\x00", "é", "a" * 300])


@dataclass(frozen=True)
class Body:
    raw: bytes | None
    content_type: str | None


def bodies(shaped: st.SearchStrategy[Any]) -> st.SearchStrategy[Body]:
    as_json = (shaped | JSON_VALUES).map(lambda value: json.dumps(value).encode())
    return st.builds(Body, st.none() | as_json | as_json | NOT_JSON, CONTENT_TYPES)


def queries(names: list[str]) -> st.SearchStrategy[str]:
    values = st.text(max_size=12) | st.integers().map(str) | st.sampled_from(["", "²", "\u0661", "0" * 30 + "1", "1e3"])
    pairs = st.dictionaries(st.sampled_from(names), values, max_size=len(names))
    return pairs.map(urllib.parse.urlencode) | st.text(max_size=20).map(lambda text: urllib.parse.quote(text, "=&"))


def segment(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def send(stack: LocalStack, method: str, path: str, key: str, body: Body | None = None) -> tuple[int, bytes]:
    """One request over a fresh connection, exactly as given: no client library fixes anything up."""
    address = urllib.parse.urlsplit(stack.api_url)
    connection = http.client.HTTPConnection(address.hostname or "127.0.0.1", address.port, timeout=60)
    headers = {"Authorization": f"Bearer {key}"}
    if body is not None and body.content_type is not None:
        headers["Content-Type"] = body.content_type
    try:
        connection.request(method, f"{address.path}/{path}", body=body.raw if body else None, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def assert_answer(status: int, raw: bytes, request: str) -> Any:
    assert status < 500, (request, status, raw[:500])
    if status >= 400 and not raw.startswith(b"{"):
        # Only the host's own routing answers without our envelope (a path no route matches).
        assert status in {404, 405}, (request, status, raw[:300])
        return None
    if status >= 400:
        error = json.loads(raw)["error"]
        assert isinstance(error["code"], str) and error["code"], (request, raw[:300])
        assert isinstance(error["message"], str) and error["message"], (request, raw[:300])
        for detail in error.get("details", []):
            assert isinstance(detail["path"], str) and detail["message"], (request, raw[:300])
        return error
    return json.loads(raw) if raw else None


@pytest.fixture(scope="module")
def tenant(admin: BatchClient) -> BatchClient:
    return make_tenant(admin, TENANT, maxGroups=1, maxCores=1, maxMemoryGb=2, weight=1)


@dataclass(frozen=True)
class LiveTask:
    job_id: str
    task_id: str
    token: str


@pytest.fixture(scope="module")
def live(stack: LocalStack, tenant: BatchClient) -> Iterator[LiveTask]:
    """A running task and its attempt's callback token, derived as the create activity derives it."""
    spec = python_job("import time; time.sleep(300)", jobId=LIVE_JOB, maxAttempts=1, taskTimeoutSeconds=600)
    tenant.submit(spec)
    deadline = time.monotonic() + 60
    while (task := tenant.job(LIVE_JOB)["tasks"][0])["state"] != "Running":
        assert time.monotonic() < deadline, task
        time.sleep(0.2)
    signing_key = stack.settings["BATCH_CALLBACK_SIGNING_KEY"]
    token = callback_token(signing_key, task_instance_id(TENANT, LIVE_JOB, task["id"]), task["attempts"])
    yield LiveTask(LIVE_JOB, task["id"], token)
    # A generated report may have finished the task already; then there is nothing to cancel (409).
    with contextlib.suppress(ApiCallError):
        tenant.cancel(LIVE_JOB)


def fuzz(check: Callable[..., None], *strategies: st.SearchStrategy[Any]) -> None:
    FUZZ(given(*strategies)(check))()


def test_job_routes_never_answer_5xx(stack: LocalStack, tenant: BatchClient, live: LiveTask) -> None:
    key = tenant.key or ""

    def submit(body: Body) -> None:
        # The marker (an unknown field) keeps a generated spec from being valid, so nothing starts; every
        # validator still runs, as all errors are collected.
        if body.raw and body.raw.startswith(b"{") and body.raw != b"{}":
            body = Body(b'{"fuzzMarker": 1, ' + body.raw[1:], body.content_type)
        status, raw = send(stack, "POST", "jobs", key, body)
        answer = assert_answer(status, raw, f"POST /jobs {body}")
        assert status == 400, (body, status, answer)

    fuzz(submit, bodies(JOB_SHAPED))

    def read(job: str, query: str, task: str, tail: str) -> None:
        job_path = f"jobs/{segment(job)}"
        for path in (f"jobs?{query}", f"{job_path}?{query}", f"{job_path}/tasks/{segment(task)}/logs?{tail}"):
            status, raw = send(stack, "GET", path, key)
            assert_answer(status, raw, f"GET {path}")

    job_ids = SEGMENTS | st.just(LIVE_JOB)
    fuzz(read, job_ids, queries(["state", "offset", "limit"]), SEGMENTS | st.just(live.task_id), queries(["tail"]))

    def cancel(job: str, body: Body) -> None:
        path = f"jobs/{segment(job)}/cancel"
        status, raw = send(stack, "POST", path, key, body)
        assert_answer(status, raw, f"POST {path}")

    fuzz(cancel, SEGMENTS, bodies(JSON_VALUES))


# The contract points settled with the fuzzing work.


def test_resubmitting_a_job_answers_its_current_state(tenant: BatchClient, live: LiveTask) -> None:
    spec = python_job("import time; time.sleep(300)", jobId=LIVE_JOB, maxAttempts=1, taskTimeoutSeconds=600)
    again = tenant.submit(spec)
    assert again["created"] is False and again["jobId"] == LIVE_JOB
    assert again["state"] == tenant.job(LIVE_JOB)["state"] == "Running"
    fresh = tenant.submit({**spec, "jobId": "fuzz-fresh", "taskCount": 1, "command": ["true"]})
    assert fresh["created"] is True and fresh["state"] == "Queued"
    tenant.cancel("fuzz-fresh")


def test_limit_zero_returns_counts_and_no_next_page(tenant: BatchClient, live: LiveTask) -> None:
    counts_only = tenant.job(LIVE_JOB, limit=0)
    assert counts_only["tasks"] == [] and counts_only["nextOffset"] is None
    assert counts_only["taskCount"] == 1 and counts_only["counts"]["Running"] == 1
    assert tenant.job(LIVE_JOB, limit=1)["nextOffset"] is None


def test_a_callback_nested_too_deep_is_refused_naming_the_field(stack: LocalStack, live: LiveTask) -> None:
    deep: Any = 1
    for _ in range(MAX_JSON_DEPTH + 1):
        deep = [deep]
    body = Body(json.dumps({"status": "progress", "progress": deep}).encode(), "application/json")
    status, raw = send(stack, "POST", f"callbacks/{live.job_id}/{live.task_id}?tenant={TENANT}", live.token, body)
    assert status == 400, raw
    assert [detail["path"] for detail in json.loads(raw)["error"]["details"]] == ["progress"]


def test_callbacks_never_answer_5xx(stack: LocalStack, live: LiveTask) -> None:
    def report(body: Body, job: str, task: str, tenant_query: str, token: str) -> None:
        path = f"callbacks/{segment(job)}/{segment(task)}?{tenant_query}"
        status, raw = send(stack, "POST", path, token, body)
        answer = assert_answer(status, raw, f"POST {path} {body}")
        if job == live.job_id and task == live.task_id and tenant_query == f"tenant={TENANT}" and token == live.token:
            # The real task and token: the body alone decides between 400 and being taken (202, or 200 once the
            # task has finished because a generated report said so).
            assert status in {200, 202, 400}, (body, status, answer)

    fuzz(
        report,
        bodies(CALLBACK_SHAPED),
        st.just(live.job_id) | SEGMENTS,
        st.just(live.task_id) | SEGMENTS,
        st.just(f"tenant={TENANT}") | queries(["tenant"]),
        st.just(live.token) | st.text(max_size=40).filter(lambda t: t.isascii() and t.isprintable()),
    )


def test_tenant_routes_never_answer_5xx(stack: LocalStack, admin: BatchClient, tenant: BatchClient) -> None:
    # Valid tenant ids other than QUOTA_TENANT would create tenants (or rotate the fuzz tenant's key).
    tenants = st.just(QUOTA_TENANT) | SEGMENTS.filter(lambda name: not TENANT_RULE.fullmatch(name))

    def administer(name: str, body: Body) -> None:
        for method, path in (("PUT", f"tenants/{segment(name)}"), ("POST", f"tenants/{segment(name)}/keys")):
            status, raw = send(stack, method, path, stack.admin_key, body)
            answer = assert_answer(status, raw, f"{method} {path} {body}")
            # Only a valid tenant id can be created or changed (no "name\n" tenant whose key breaks headers).
            assert status >= 400 or name == QUOTA_TENANT, (method, path, status, answer)

    fuzz(administer, tenants, bodies(QUOTA_SHAPED))

    def show(name: str) -> None:
        for key in (stack.admin_key, tenant.key or ""):
            status, raw = send(stack, "GET", f"tenants/{segment(name)}", key)
            assert_answer(status, raw, f"GET tenants/{name!r}")

    fuzz(show, SEGMENTS | st.just(TENANT))
