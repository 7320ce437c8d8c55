"""The job API's reads of orchestration statuses: without the input unless asked (`api.statusreads`), and a job's
input read once per worker process and kept (`api.jobfacts`), through the real Durable SDK client over real HTTP
on 127.0.0.1 (a status API of the test's own that records every request)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import azure.durable_functions as df
import pytest
from azure.durable_functions.models.utils import http_utils

from acibatch.naming import job_instance_id
from acibatch.spec import parse_job_spec
from api.jobfacts import FactsCache, JobFacts, job_status_and_facts
from api.statusreads import StatusReadFailed, read_status, status_url
from devhost.binding import durable_client_binding
from tests.httpserve import send_json, serving_on_a_thread

CREATED = "2026-12-06T12:00:00Z"


def job_input(task_count: int, **spec: Any) -> dict[str, Any]:
    tasks = [{"id": f"t{index}", **spec.pop("task", {})} for index in range(task_count)]
    return {"tenant": "acme", "jobId": "big", "submittedAt": "2026-12-06T11:59:59.123456Z",
            "spec": {"image": "img", "tasks": tasks, **spec}}  # fmt: skip


class StatusApi(ThreadingHTTPServer):
    """Answers `GET /durabletask/instances/{id}` from `instances` as the extension does, showing the input only
    when `showInput` is not false; `answer` overrides the status code."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), StatusHandler)
        self.instances: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str | None]] = []  # (instance id, showInput as sent)
        self.answer: int | None = None

    @property
    def rpc_base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/durabletask/"


class StatusHandler(BaseHTTPRequestHandler):
    server: StatusApi

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        instance = unquote(url.path.removeprefix("/durabletask/instances/"))
        show = parse_qs(url.query).get("showInput", [None])[0]
        self.server.requests.append((instance, show))
        found = self.server.instances.get(instance)
        if self.server.answer is not None:
            send_json(self, self.server.answer, {"message": "busy"})
        elif found is None:
            send_json(self, 404, None)
        else:
            shown = str(show).lower() != "false"
            send_json(self, 200 if found["runtimeStatus"] == "Completed" else 202,
                      {**found, "input": found["input"] if shown else None})  # fmt: skip

    def log_message(self, *args: Any) -> None:  # quiet
        pass


@pytest.fixture
def api() -> Iterator[StatusApi]:
    with serving_on_a_thread(StatusApi()) as server:
        yield server


@pytest.fixture
async def client(api: StatusApi) -> AsyncIterator[df.DurableOrchestrationClient]:
    binding = durable_client_binding("http://127.0.0.1:1", "hub", api.rpc_base, "system-key")
    yield df.DurableOrchestrationClient(binding)
    # The SDK keeps one HTTP session per process, bound to this test's event loop: close it with the loop.
    await http_utils._close_session()


def put_job(api: StatusApi, task_count: int, created: str = CREATED, **spec: Any) -> str:
    instance = job_instance_id("acme", "big")
    api.instances[instance] = {
        "name": "job", "instanceId": instance, "runtimeStatus": "Running", "createdTime": created,
        "lastUpdatedTime": created, "customStatus": {"phase": "running"}, "output": None,
        # The Python client starts orchestrations with JSON text as the input (double-encoded).
        "input": json.dumps(job_input(task_count, **spec)),
    }  # fmt: skip
    return instance


def test_status_url_says_whether_to_show_the_input(client: df.DurableOrchestrationClient, api: StatusApi) -> None:
    assert (
        status_url(client, "job:acme:big", with_input=False) == f"{api.rpc_base}instances/job:acme:big?showInput=false"
    )
    assert status_url(client, "job:acme:big", with_input=True).endswith("?showInput=true")


async def test_a_status_read_leaves_the_input_out_unless_asked(
    client: df.DurableOrchestrationClient, api: StatusApi
) -> None:
    instance = put_job(api, 3)
    bare = await read_status(client, instance)
    assert bare is not None and bare.input_ is None
    assert (bare.runtime_status, bare.custom_status, bare.created_text) == ("Running", {"phase": "running"}, CREATED)
    assert bare.created_time is not None and bare.created_time.isoformat() == "2026-12-06T12:00:00+00:00"
    full = await read_status(client, instance, with_input=True)
    assert full is not None and full.input_ == job_input(3)  # decoded from the client's JSON text
    assert api.requests == [(instance, "false"), (instance, "true")]
    assert await read_status(client, "job:acme:none") is None


async def test_an_unexpected_answer_is_an_error_not_a_missing_job(
    client: df.DurableOrchestrationClient, api: StatusApi
) -> None:
    instance = put_job(api, 1)
    api.answer = 503
    with pytest.raises(StatusReadFailed, match="HTTP 503"):
        await read_status(client, instance)


async def test_a_job_input_is_read_once_then_only_its_status(
    client: df.DurableOrchestrationClient, api: StatusApi
) -> None:
    instance = put_job(api, 1000)
    cache = FactsCache()
    reads = [await job_status_and_facts(client, "acme", "big", cache) for _ in range(3)]
    for found in reads:
        assert found is not None
        status, facts = found
        assert facts.task_ids == tuple(f"t{index}" for index in range(1000))
        assert facts.submitted_at == "2026-12-06T11:59:59.123456Z" and facts.graph is None
        assert status.runtime_status == "Running"
    # The first read showed the input; the later ones asked for the status alone.
    assert api.requests == [(instance, "true"), (instance, "false"), (instance, "false")]


async def test_a_resubmitted_job_id_is_read_afresh(client: df.DurableOrchestrationClient, api: StatusApi) -> None:
    put_job(api, 2)
    cache = FactsCache()
    first = await job_status_and_facts(client, "acme", "big", cache)
    put_job(api, 5, created="2026-12-06T13:00:00Z")  # purged and submitted again under the same id
    second = await job_status_and_facts(client, "acme", "big", cache)
    assert first is not None and second is not None
    assert (len(first[1].task_ids), len(second[1].task_ids)) == (2, 5)
    assert [show for _, show in api.requests] == ["true", "false", "true"]
    del api.instances[job_instance_id("acme", "big")]
    assert await job_status_and_facts(client, "acme", "big", cache) is None


def facts(count: int) -> JobFacts:
    return JobFacts(tuple(str(index) for index in range(count)), None)


def test_kept_facts_are_bounded_by_task_ids_and_by_jobs() -> None:
    cache = FactsCache(ids_kept=100, jobs_kept=3)
    cache.put("a", "1", facts(60))
    cache.put("b", "1", facts(30))
    assert cache.get("a", "1") is not None  # now the most recently used
    cache.put("c", "1", facts(20))  # 110 ids: the least recently used (b) makes way
    assert (cache.get("b", "1"), cache.ids_held) == (None, 80)
    assert cache.get("a", "1") is not None and cache.get("c", "1") is not None
    cache.put("d", "1", facts(1))
    cache.put("e", "1", facts(1))  # four jobs: one too many
    assert len(cache.entries) == 3 and cache.ids_held == sum(len(f.task_ids) for _, f in cache.entries.values())
    cache.put("huge", "1", facts(101))  # over the whole budget: not kept, nothing evicted for it
    assert cache.get("huge", "1") is None and len(cache.entries) == 3
    assert cache.get("d", "2") is None  # another creation time: another job


def test_only_a_job_with_dependencies_keeps_its_spec_for_the_graph() -> None:
    plain = JobFacts.of_input(job_input(3))
    assert plain.spec is None and plain.graph is None
    tasks = [{"id": "a"}, {"id": "b", "dependsOn": {"taskIds": ["a"]}}]
    spec = parse_job_spec({"image": "registry.example.com/team/app:1", "command": ["run"], "tasks": tasks})
    linked = JobFacts.of_input({"spec": spec.to_dict(), "submittedAt": "x"})
    assert linked.task_ids == ("a", "b")
    assert linked.graph is not None and list(linked.graph.ids) == ["a", "b"]
    assert linked.graph is linked.graph  # built once


def test_the_sdk_internals_the_cheaper_reads_use_are_there() -> None:
    """requirements.txt pins the SDK's minor version these were checked on; raising it must keep this green."""
    from azure.durable_functions.models.history import HistoryEvent as history_event_class

    from api import statusreads
    from orchestrators import timestamps

    binding = durable_client_binding("http://127.0.0.1:1", "hub", "http://127.0.0.1:2/durabletask/", "system-key")
    assert statusreads.get_async_request is not None
    assert statusreads.status_url(df.DurableOrchestrationClient(binding), "i", with_input=False).startswith(
        "http://127.0.0.1:2/durabletask/instances/i"
    )
    assert timestamps.HISTORY_EVENT_MODULE is not None and history_event_class is not None
    assert callable(getattr(timestamps.HISTORY_EVENT_MODULE, timestamps.PARSER_NAME))  # what `install` wraps


async def test_without_the_sdk_internals_a_read_goes_through_get_status(
    client: df.DurableOrchestrationClient, api: StatusApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    from api import statusreads

    instance = put_job(api, 2)
    monkeypatch.setattr(statusreads, "get_async_request", None)
    found = await read_status(client, instance)
    assert found is not None and (found.runtime_status, found.custom_status) == ("Running", {"phase": "running"})
    assert found.created_text == CREATED and found.input_ == job_input(2)  # get_status always shows the input
    assert api.requests == [(instance, None)]  # the SDK's own read: no showInput flag
    assert await read_status(client, "job:acme:none") is None
