"""Load: concurrent clients submitting many jobs, and a burst of callbacks with duplicates, stale attempts and
wrong tokens. Every job finishes, no completion is duplicated or lost; API latency percentiles are printed.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from acibatch.naming import task_instance_id
from acibatch.tokens import callback_token
from localdev.client import BatchClient
from tests.reliability.test_crash_and_faults import job, stack

pytestmark = pytest.mark.e2e


class Timed:
    """Records the latency of every API call made through it."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.lock = threading.Lock()

    def __call__(self, function: Any, *args: Any) -> Any:
        started = time.perf_counter()
        try:
            return function(*args)
        finally:
            with self.lock:
                self.latencies.append(time.perf_counter() - started)

    def percentiles(self) -> tuple[float, float]:
        ordered = sorted(self.latencies)
        return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def submit_many(api: str, keys: list[str], clients: int, jobs: int, timed: Timed) -> None:
    code = "import time, acibatch_report as r; time.sleep(0.2); r.succeeded({'ok': 1})"

    def client_work(number: int) -> list[tuple[BatchClient, str]]:
        client = BatchClient(api, keys[number % len(keys)])
        mine = [f"load-{number}-{i}" for i in range(number, jobs, clients)]
        for job_id in mine:
            timed(client.submit, {**job(1, code), "jobId": job_id})
        return [(client, job_id) for job_id in mine]

    with ThreadPoolExecutor(clients) as pool:
        submitted = [item for batch in pool.map(client_work, range(clients)) for item in batch]
    assert len(submitted) == jobs
    deadline = time.monotonic() + 60 + jobs
    pending = list(submitted)
    while pending:
        assert time.monotonic() < deadline, f"{len(pending)} jobs unfinished"
        client, job_id = pending[0]
        state = timed(client.job, job_id, 0, 0)["state"]
        if state in {"Succeeded", "Failed", "Cancelled"}:
            assert state == "Succeeded", job_id
            pending.pop(0)
        else:
            time.sleep(0.2)


def post(url: str, token: str, body: dict[str, Any]) -> int:
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def callback_burst(api: str, settings: dict[str, str], client: BatchClient, tasks: int, timed: Timed) -> Counter[str]:
    # Attempt 1 exits at once (so a stale token exists); attempt 2 waits for our callback.
    code = "import os, sys, time\nif os.environ['BATCH_ATTEMPT'] == '1': sys.exit(3)\ntime.sleep(120)\n"
    client.submit({**job(tasks, code), "jobId": "burst"})
    deadline = time.monotonic() + 60 + tasks
    while client.job("burst", 0, 0)["counts"]["Running"] < tasks or any(
        task["attempts"] != 2 for task in client.all_tasks("burst")
    ):
        assert time.monotonic() < deadline, client.job("burst", 0, 0)["counts"]
        time.sleep(0.3)
    key = settings["BATCH_CALLBACK_SIGNING_KEY"]
    calls: list[tuple[str, str, str, dict[str, Any]]] = []
    for index in range(tasks):
        instance = task_instance_id("loaded", "burst", str(index))
        url = f"{api}/callbacks/burst/{index}?tenant=loaded"
        good = callback_token(key, instance, 2)
        done = {"status": "succeeded", "result": {"n": index}}
        neighbour = task_instance_id("loaded", "burst", str((index + 1) % tasks))
        failed = {"status": "failed"}
        calls += [
            ("valid", url, good, done),
            ("duplicate", url, good, done),
            ("stale", url, callback_token(key, instance, 1), failed),
            ("other task", url, callback_token(key, neighbour, 2), failed),
            ("garbage", url, "v1.nope", failed),
        ]
    outcomes: Counter[str] = Counter()
    with ThreadPoolExecutor(20) as pool:
        for kind, status in pool.map(lambda c: (c[0], timed(post, c[1], c[2], c[3])), calls):
            outcomes[f"{kind}:{status}"] += 1
    return outcomes


def run_load(tmp_path: Path, clients: int, jobs: int, burst_tasks: int) -> None:
    timed = Timed()
    groups = str(max(16, burst_tasks + 4))
    region = {"ACI_MAX_GROUPS": groups, "ACI_MAX_CORES": groups}
    with stack(tmp_path, ["--max-groups", groups, "--max-cores", groups], region) as running:
        admin = BatchClient(running.api, running.settings["BATCH_ADMIN_KEY"])
        keys = [admin.put_tenant(f"load{i}", {"maxGroups": 8, "maxCores": 8, "maxMemoryGb": 16})["apiKey"]
                for i in range(4)]  # fmt: skip
        submit_many(running.api, keys, clients, jobs, timed)
        quota = {"maxGroups": burst_tasks, "maxCores": burst_tasks, "maxMemoryGb": burst_tasks}
        loaded = BatchClient(running.api, admin.put_tenant("loaded", quota)["apiKey"])
        outcomes = callback_burst(running.api, running.settings, loaded, burst_tasks, timed)
        deadline = time.monotonic() + 60
        while (burst := loaded.job("burst", 0, 0))["state"] != "Succeeded":
            assert time.monotonic() < deadline, burst["counts"]
            time.sleep(0.3)
        tasks = loaded.all_tasks("burst")
        # No lost callback (every task completed by its callback, with its own result), none duplicated.
        assert [task["result"] for task in tasks] == [{"n": i} for i in range(burst_tasks)]
        assert loaded.get_tenant("loaded")["usage"]["tasks"]["succeeded"] == burst_tasks
        # Every valid report and its repeat is acknowledged (202 delivered, or 200 for an already finished task).
        accepted = sum(outcomes[f"{kind}:{code}"] for kind in ("valid", "duplicate") for code in (200, 202))
        assert accepted == 2 * burst_tasks, outcomes
        for kind in ("other task", "garbage"):
            assert outcomes[f"{kind}:403"] == burst_tasks, outcomes
        # An older attempt's v2 token names its attempt: its report is delivered (or, once the task has finished,
        # acknowledged) and ignored by the task, never refused at the door; the results above show none completed.
        assert outcomes["stale:202"] + outcomes["stale:200"] == burst_tasks, outcomes
        total = sum(admin.get_tenant(f"load{i}")["usage"]["tasks"]["succeeded"] for i in range(4))
        assert total == jobs
    p50, p99 = timed.percentiles()
    print(f"\nAPI latency over {len(timed.latencies)} calls: p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms; "
          f"callbacks: {dict(outcomes)}")  # fmt: skip


def test_concurrent_clients_and_a_callback_burst(tmp_path: Path) -> None:
    run_load(tmp_path, clients=8, jobs=24, burst_tasks=10)


@pytest.mark.long
def test_20_clients_200_jobs_and_2000_callbacks(tmp_path: Path) -> None:
    run_load(tmp_path, clients=20, jobs=200, burst_tasks=400)
