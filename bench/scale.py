"""The scale run of `make bench`: one large job of `sleep 1` + callback tasks on the local stack, with the job's
API read all the while.

While the job runs, a thread reads `GET /api/jobs/{id}` (its first page of tasks, as a client shows it) and
`GET /api/jobs` about every half second and records how long each answer took: a job's reads must cost what the
answer holds, not what the job's input holds, so their latency must not grow with the job. The job's time is
compared (in `bench.run`) with the end-to-end job's of the same run; devhost's peak RSS (with its language
workers) says whether a job this large still fits the host's memory.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from acibatch.naming import job_instance_id
from bench.appsettings import emulator_args, job_settings
from bench.durable_api import DurableApi, wait_for_instance
from bench.machine import find_pids, peak_rss_of_stack
from localdev.client import BatchClient
from localdev.localstack import EXAMPLE_WORKER_IMAGE, local_stack

JOB_ID = "scale"
TENANT = "bench"
READ_INTERVAL_SECONDS = 0.5
# The targets: shown beside the figures (bench.run's targets block decides whether they hold).
RATIO_TARGET = 10.5
API_P99_TARGET_MS = 300.0
RSS_TARGET_MB = 500.0


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile (`share` in 0..1) of `values`; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * share // 1))  # ceil without float surprises for small counts
    return ordered[min(len(ordered), int(rank)) - 1]


def latency_summary(milliseconds: list[float], failures: int = 0) -> dict[str, Any]:
    return {
        "p50": round(percentile(milliseconds, 0.5), 1),
        "p99": round(percentile(milliseconds, 0.99), 1),
        "max": round(max(milliseconds, default=0.0), 1),
        "calls": len(milliseconds),
        "failures": failures,
    }


class ApiReader(threading.Thread):
    """Reads the job and the job list every READ_INTERVAL_SECONDS until stopped, timing each answer."""

    def __init__(self, client: BatchClient, job_id: str) -> None:
        super().__init__(name="scale-api-reader", daemon=True)
        self.client, self.job_id = client, job_id
        self.stopping = threading.Event()
        self.times: dict[str, list[float]] = {"job": [], "jobs": []}
        self.failures: dict[str, int] = {"job": 0, "jobs": 0}
        self.errors: list[str] = []

    def _timed(self, name: str, read: Any) -> None:
        started = time.perf_counter()
        try:
            read()
        except Exception as error:  # a failed read is counted and shown; the run goes on
            self.failures[name] += 1
            if len(self.errors) < 5:
                self.errors.append(f"{name}: {error}"[:300])
            return
        self.times[name].append((time.perf_counter() - started) * 1000)

    def run(self) -> None:
        while not self.stopping.is_set():
            began = time.perf_counter()
            self._timed("job", lambda: self.client.job(self.job_id))
            self._timed("jobs", self.client.jobs)
            self.stopping.wait(max(0.0, READ_INTERVAL_SECONDS - (time.perf_counter() - began)))

    def summary(self) -> dict[str, Any]:
        return {name: latency_summary(times, self.failures[name]) for name, times in self.times.items()}


def scale_run(tasks: int, slots: int, data: Path, reporter: str) -> dict[str, Any]:
    """Run one job of `tasks` `sleep 1` + `reporter` callback tasks with capacity for `slots` groups, reading its
    API while it runs; the figures `scale_rows` shows."""
    from bench.run import sleep_then_call_back  # noqa: PLC0415  (bench.run imports this module)

    # The end-to-end job's settings (bench.run.end_to_end), so the two times compare.
    settings = job_settings(slots)
    with local_stack(data, settings=settings, emulator_args=emulator_args(slots)) as stack:
        admin = BatchClient(stack.api_url, stack.admin_key)
        quota = {"maxGroups": slots, "maxCores": slots, "maxMemoryGb": slots}
        key = admin.put_tenant(TENANT, quota)["apiKey"]
        client = BatchClient(stack.api_url, key)
        spec = {"jobId": JOB_ID, "image": EXAMPLE_WORKER_IMAGE, "command": sleep_then_call_back(reporter), "cpu": 1,
                "memoryGb": 1, "env": {}, "taskCount": tasks, "taskTimeoutSeconds": 600}  # fmt: skip
        reader = ApiReader(BatchClient(stack.api_url, key), JOB_ID)
        started = time.perf_counter()
        client.submit(spec)
        reader.start()
        try:
            wait_for_instance(DurableApi.of(stack.host_url, stack.durable_key), job_instance_id(TENANT, JOB_ID))
            seconds = time.perf_counter() - started
        finally:
            reader.stopping.set()
            reader.join()
        job = client.job(JOB_ID, limit=0)
        rss = peak_rss_of_stack(find_pids(stack.host_url, stack.aci_url))
    return {
        "tasks": tasks,
        "slots": slots,
        "reporter": reporter,
        "seconds": round(seconds, 2),
        "floor_seconds": round(tasks / slots, 1),  # `sleep 1` on every slot, all the time
        "state": job["state"],
        "counts": job["counts"],
        "peak_rss_mb": rss,
        "api_ms": reader.summary(),
        "api_errors": reader.errors,
    }


def _api_row(result: dict[str, Any], name: str, path: str) -> tuple[str, str]:
    api = result["api_ms"][name]
    label = f"  GET {path} p50 / p99 (ms, target p99 < {API_P99_TARGET_MS:.0f})"
    return label, f"{api['p50']} / {api['p99']} ({api['calls']} calls, {api['failures']} failed)"


def scale_rows(result: dict[str, Any], e2e_seconds: float | None) -> list[tuple[str, str]]:
    """The scale run's rows of the bench table: time (and its ratio to the end-to-end job's), RSS, API latency."""
    rss = result["peak_rss_mb"]
    ratio = f"{result['seconds'] / e2e_seconds:.2f}x" if e2e_seconds else "n/a (no end-to-end time)"
    return [
        (f"scale: {result['tasks']} tasks, {result['slots']} slots (s)", f"{result['seconds']} ({result['state']})"),
        (f"  / end-to-end job's time (target <= {RATIO_TARGET}x)", ratio),
        (
            f"  peak RSS devhost incl. workers / aciemu (MB, target < {RSS_TARGET_MB:.0f})",
            f"{rss.get('devhost')} / {rss.get('aciemu')}",
        ),
        _api_row(result, "job", "/api/jobs/{id}"),
        _api_row(result, "jobs", "/api/jobs"),
    ]
