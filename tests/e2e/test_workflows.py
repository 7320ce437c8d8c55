"""Issue 25 on the local stack: task dependencies (order from timestamps, Skipped with reasons), exit conditions,
a platform retry that uses no attempt, a 1,000 -> 1,000 -> 1 map-reduce, and refusals at submit."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from bench.run import BASH_REPORTER
from localdev.client import ApiCallError, BatchClient
from localdev.localstack import EXAMPLE_WORKER_IMAGE, LocalStack, local_stack
from tests.e2e.conftest import tasks_by_id
from tests.e2e.test_engine import add_fault

SLOTS = 50
# The bench's bash callback without its second of sleep: the task reports success at once (cheap on 2 cores).
REPORT_AT_ONCE = ["bash", "-c", BASH_REPORTER.replace("sleep 1 || exit 1", "true")]
TERMINAL = {"Succeeded", "Failed", "Cancelled"}


@pytest.fixture(scope="module")
def flow_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    settings = {"ACI_MAX_GROUPS": str(SLOTS), "ACI_MAX_CORES": str(SLOTS), "BATCH_POLL_SECONDS": "1"}
    emulator_args = ["--max-groups", str(SLOTS + 10), "--max-cores", str(SLOTS + 10)]
    with local_stack(tmp_path_factory.mktemp("flows"), settings=settings, emulator_args=emulator_args) as running:
        yield running


@pytest.fixture(scope="module")
def client(flow_stack: LocalStack) -> BatchClient:
    admin = BatchClient(flow_stack.api_url, flow_stack.admin_key)
    quota = {"maxGroups": SLOTS, "maxCores": SLOTS, "maxMemoryGb": SLOTS, "weight": 1}
    return BatchClient(flow_stack.api_url, admin.put_tenant("flows", quota)["apiKey"])


def spec(**fields: Any) -> dict[str, Any]:
    return {
        "image": EXAMPLE_WORKER_IMAGE,
        "command": REPORT_AT_ONCE,
        "cpu": 1,
        "memoryGb": 1,
        "maxAttempts": 2,
        "taskTimeoutSeconds": 120,
        **fields,
    }


def shell(code: str) -> list[str]:
    return ["bash", "-c", code]


def wait_done(client: BatchClient, job_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = client.job(job_id, limit=0)
        if job["state"] in TERMINAL:
            job["tasks"] = client.all_tasks(job_id)
            return job
        assert time.monotonic() < deadline, f"job {job_id} still {job['state']}: {job['counts']}"
        time.sleep(0.5)


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def assert_order(tasks: dict[str, dict[str, Any]], edges: list[tuple[str, str]]) -> None:
    """Every task started after each of its parents finished (each `(parent, child)` in `edges`)."""
    for parent, child in edges:
        assert moment(tasks[child]["startedAt"]) > moment(tasks[parent]["finishedAt"]), (parent, child)


def test_a_diamond_runs_in_dependency_order(client: BatchClient) -> None:
    slow_a = '[ "$BATCH_TASK_ID" = A ] && sleep 3; ' + BASH_REPORTER.replace("sleep 1 || exit 1", "true")
    tasks = [
        {"id": "A"},
        {"id": "B", "dependsOn": {"taskIds": ["A"]}},
        {"id": "C", "dependsOn": {"taskIds": ["A"]}},
        {"id": "D", "dependsOn": {"taskIds": ["B", "C"]}},
    ]
    client.submit(spec(jobId="diamond", tasks=tasks, command=shell(slow_a)))
    # While A runs, B, C and D wait for their upstream tasks: Blocked, each with what it waits for.
    seen = client.job("diamond")
    by_id = tasks_by_id(seen)
    assert [by_id[task]["state"] for task in "BCD"] == ["Blocked"] * 3, seen
    assert (by_id["B"]["blockedBy"], by_id["D"]["blockedBy"]) == (["A"], ["B", "C"])
    assert seen["counts"]["Blocked"] == 3
    job = wait_done(client, "diamond")
    assert job["state"] == "Succeeded", job["counts"]
    by_id = tasks_by_id(job)
    assert_order(by_id, [("A", "B"), ("A", "C"), ("B", "D"), ("C", "D")])
    assert job["counts"]["Succeeded"] == 4 and job["counts"]["Skipped"] == job["counts"]["Blocked"] == 0
    assert all(not task["blockedBy"] for task in job["tasks"])


def test_a_chain_whose_middle_task_blocks_skips_the_rest_with_reasons(client: BatchClient) -> None:
    code = '[ "$BATCH_TASK_INDEX" = 2 ] && exit 3; ' + BASH_REPORTER.replace("sleep 1 || exit 1", "true")
    client.submit(
        spec(
            jobId="chain",
            command=shell(code),
            taskCount=5,
            dependsOn={"array": "job", "mode": "sequential"},
            exitConditions={"exitCodes": [{"code": 3, "exitOptions": {"action": "fail", "dependencyAction": "block"}}]},
        )
    )
    job = wait_done(client, "chain")
    by_id = tasks_by_id(job)
    assert [by_id[str(i)]["state"] for i in range(5)] == ["Succeeded", "Succeeded", "Failed", "Skipped", "Skipped"]
    assert by_id["2"]["attempts"] == 1 and by_id["2"]["exitCode"] == 3  # fail: no retry despite maxAttempts 2
    assert by_id["3"]["reason"] == "upstream 2 Failed"
    assert by_id["4"]["reason"] == "upstream 3 Skipped"
    assert by_id["3"]["startedAt"] is None  # never ran
    assert_order(by_id, [("0", "1"), ("1", "2")])
    assert job["state"] == "Failed" and job["counts"]["Skipped"] == 2


def test_exit_codes_mapped_to_succeed_and_to_fail(client: BatchClient) -> None:
    rules = {
        "exitCodes": [
            {"code": 5, "exitOptions": {"action": "succeed"}},
            {"code": 6, "exitOptions": {"action": "fail"}},
        ]
    }
    code = "exit $(( 5 + BATCH_TASK_INDEX ))"
    client.submit(spec(jobId="codes", command=shell(code), taskCount=2, exitConditions=rules, maxAttempts=3))
    job = wait_done(client, "codes")
    by_id = tasks_by_id(job)
    assert (by_id["0"]["state"], by_id["0"]["attempts"], by_id["0"]["exitCode"]) == ("Succeeded", 1, 5)
    assert (by_id["1"]["state"], by_id["1"]["attempts"], by_id["1"]["exitCode"]) == ("Failed", 1, 6)
    assert "without retry" in by_id["1"]["error"]


def test_a_spot_eviction_is_retried_without_using_an_attempt(flow_stack: LocalStack, client: BatchClient) -> None:
    add_fault(
        flow_stack, {"op": "create", "fault": "evict", "afterSeconds": 0.5, "match": {"name": "flows-*"}, "count": 1}
    )
    slow = BASH_REPORTER.replace("sleep 1 || exit 1", "sleep 2")
    client.submit(spec(jobId="evicted", command=shell(slow), taskCount=1, maxAttempts=1, priority="Spot"))
    job = wait_done(client, "evicted")
    (task,) = job["tasks"]
    assert job["state"] == "Succeeded"
    assert (task["attempts"], task["platformRetries"]) == (2, 1)  # maxAttempts 1: the retry was not counted


def test_a_cycle_and_an_unknown_id_are_refused_with_400_and_nothing_starts(client: BatchClient) -> None:
    bad = [
        {"id": "a", "dependsOn": {"taskIds": ["c"]}},
        {"id": "b", "dependsOn": {"taskIds": ["a"]}},
        {"id": "c", "dependsOn": {"taskIds": ["b"]}},
        {"id": "d", "dependsOn": {"taskIds": ["ghost"]}},
    ]
    with pytest.raises(ApiCallError) as refused:
        client.submit(spec(jobId="cyclic", tasks=bad))
    assert refused.value.status == 400
    text = str(refused.value)
    assert "unknown task id 'ghost'" in text and "tasks[3].dependsOn.taskIds" in text
    with pytest.raises(ApiCallError) as cyclic:
        client.submit(spec(jobId="cyclic", tasks=bad[:3]))
    assert cyclic.value.status == 400 and "dependency cycle:" in str(cyclic.value)
    with pytest.raises(ApiCallError) as missing:
        client.job("cyclic")
    assert missing.value.status == 404


def test_a_ten_thousand_task_chain_is_accepted(client: BatchClient) -> None:
    accepted = client.submit(
        spec(jobId="long-chain", taskCount=10_000, dependsOn={"array": "job", "mode": "sequential"})
    )
    assert accepted["created"] is True
    client.cancel("long-chain")
    job = wait_done(client, "long-chain", timeout=180)
    assert job["state"] == "Cancelled"
    assert job["counts"]["Cancelled"] + job["counts"]["Succeeded"] == 10_000


def test_a_thousand_wide_map_then_map_then_reduce(client: BatchClient) -> None:
    width = 1_000
    tasks: list[dict[str, Any]] = [{"id": f"m{i}", "group": "map"} for i in range(width)]
    tasks += [{"id": f"n{i}", "group": "next", "dependsOn": {"array": "map", "mode": "nToN"}} for i in range(width)]
    tasks.append({"id": "reduce", "dependsOn": {"taskIds": [f"n{i}" for i in range(width)]}})
    started = time.monotonic()
    client.submit(spec(jobId="mapreduce", tasks=tasks, maxAttempts=1))
    job = wait_done(client, "mapreduce", timeout=900)
    elapsed = time.monotonic() - started
    assert job["state"] == "Succeeded", job["counts"]
    by_id = tasks_by_id(job)
    edges = [(f"m{i}", f"n{i}") for i in range(width)] + [(f"n{i}", "reduce") for i in range(width)]
    assert_order(by_id, edges)
    print(f"1,000 -> 1,000 -> 1 map-reduce on {SLOTS} slots: {elapsed:.1f} s")
