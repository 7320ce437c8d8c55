"""A cancelled big job on the local stack: how long its cancel takes, and what a read of the ended job costs.

    .venv/bin/python -m bench.cancelled [--tasks 2000] [--slots 50] [--reads 10]

Starts a stack as the bench's jobs run (`bench.appsettings`: task waves on), submits `--tasks` tasks that sleep for
ten minutes, cancels the job once `--slots` of them run, and times the cancel until the job reads Cancelled. Then it
reads the ended job `--reads` times, a page of 100 of `GET /api/jobs/{id}` and a page of 200 of its task list, and
reports the median time of each and how many Durable status reads each made (devhost's work counts): with task
waves, most tasks of such a job were never started, so they have no orchestration to read. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.appsettings import emulator_args, job_settings
from bench.durable_api import DurableApi, close_connections
from localdev.client import BatchClient
from localdev.localstack import EXAMPLE_WORKER_IMAGE, local_stack

JOB = "big"
# What each read asks for: a page of the job with its tasks, and a page of its task list.
READS = {"job_page_100": ("jobs/big", {"limit": 100}), "tasks_page_200": ("jobs/big/tasks", {"limit": 200})}


def wait_until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.2)


def status_reads(api: DurableApi) -> int:
    return int(api.get("devhost/work")["clientCalls"].get("status", 0))


def read_costs(client: BatchClient, api: DurableApi, reads: int) -> dict[str, dict[str, float]]:
    costs: dict[str, dict[str, float]] = {}
    for name, (path, query) in READS.items():
        times, counts = [], []
        for _ in range(reads):
            before = status_reads(api)
            started = time.perf_counter()
            client.request("GET", path, query=query)
            times.append((time.perf_counter() - started) * 1000)
            counts.append(status_reads(api) - before)
        costs[name] = {"median_ms": round(statistics.median(times), 1), "status_reads": statistics.median(counts)}
    return costs


def cancelled_job(data: Path, tasks: int, slots: int, reads: int) -> dict[str, Any]:
    with local_stack(data, settings=job_settings(slots), emulator_args=emulator_args(slots)) as stack:
        admin = BatchClient(stack.api_url, stack.admin_key)
        quota = {"maxGroups": slots, "maxCores": slots, "maxMemoryGb": slots}
        client = BatchClient(stack.api_url, admin.put_tenant("bench", quota)["apiKey"])
        api = DurableApi.of(stack.host_url, stack.durable_key)
        spec = {"jobId": JOB, "image": EXAMPLE_WORKER_IMAGE, "command": ["sleep", "600"], "cpu": 1, "memoryGb": 1,
                "taskCount": tasks, "taskTimeoutSeconds": 900}  # fmt: skip
        client.submit(spec)
        wait_until(lambda: client.job(JOB, limit=0)["counts"]["Running"] >= slots, 300, "the region full")
        started = time.perf_counter()
        client.cancel(JOB)
        wait_until(lambda: client.job(JOB, limit=0)["state"] == "Cancelled", 600, "the job cancelled")
        seconds = time.perf_counter() - started
        time.sleep(2)  # the tasks' last signals land: the reads below see the ended job as it stays
        result = {"tasks": tasks, "slots": slots, "cancel_seconds": round(seconds, 2), **read_costs(client, api, reads)}
    close_connections()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--slots", type=int, default=50)
    parser.add_argument("--reads", type=int, default=10)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="acibatch-cancelled-") as scratch:
        print(json.dumps(cancelled_job(Path(scratch), args.tasks, args.slots, args.reads)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
