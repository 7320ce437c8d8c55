"""Issue 21: a long-running task's history stays under the README's bound, read through the Durable HTTP API.

One task polls every 0.1 s for long enough to continue as new several times; its history, as the Durable HTTP
API shows it (the current generation only, as on Azure Storage), never grows past HISTORY_BOUND events.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from acibatch.checkpoint import WAITS_PER_GENERATION
from acibatch.naming import task_instance_id
from localdev.client import BatchClient
from localdev.localstack import EXAMPLE_WORKER_IMAGE, LocalStack, local_stack
from tests.httpserve import call_json
from tests.orchestrators.test_task_generations import HISTORY_BOUND

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def polling_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with local_stack(tmp_path_factory.mktemp("polling"), settings={"BATCH_POLL_SECONDS": "0.1"}) as running:
        yield running


def test_a_task_polled_for_many_generations_keeps_its_history_under_the_bound(polling_stack: LocalStack) -> None:
    admin = BatchClient(polling_stack.api_url, polling_stack.admin_key)
    client = BatchClient(polling_stack.api_url, admin.put_tenant("patient", {"maxGroups": 1, "maxCores": 1})["apiKey"])
    # Never calls back: only polling can tell when it ends.
    client.submit({"jobId": "long", "image": EXAMPLE_WORKER_IMAGE, "command": ["sleep", "20"], "cpu": 0.5,
                   "memoryGb": 0.5, "taskCount": 1, "taskTimeoutSeconds": 120})  # fmt: skip
    instance = quote(task_instance_id("patient", "long", "0"), safe="")
    status_url = f"{polling_stack.host_url}/runtime/webhooks/durabletask/instances/{instance}"
    headers = {"x-functions-key": polling_stack.durable_key}
    longest, generations = 0, 1
    deadline = time.monotonic() + 150
    while True:
        status, body = call_json(f"{status_url}?showHistory=true&showInput=true", headers=headers)
        assert time.monotonic() < deadline, "the task did not finish"
        if status in (200, 202) and isinstance(body, dict):  # 202 while it runs
            longest = max(longest, len(body.get("historyEvents") or []))
            given = body.get("input")
            given = json.loads(given) if isinstance(given, str) else given  # JSON text when the client sent text
            resume = given.get("resume") if isinstance(given, dict) else None
            generations = max(generations, int(resume["generation"]) if resume else generations)
            if body["runtimeStatus"] == "Completed":
                break
        time.sleep(0.2)
    polls = 20 / 0.1
    assert generations >= 2, f"expected the task to continue as new after about {WAITS_PER_GENERATION} polls"
    assert longest <= HISTORY_BOUND, (longest, generations, polls)
    assert client.job("long")["state"] == "Succeeded"
