"""The scale job's figures (`bench/scale.py`): percentiles, the API reader's timings and failures over real HTTP on
127.0.0.1, and the table rows. Nothing here is timed against a target."""

from __future__ import annotations

import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bench.scale import ApiReader, latency_summary, percentile, scale_rows
from localdev.client import BatchClient
from tests.httpserve import send_json, serving_on_a_thread


def test_percentiles_are_nearest_rank() -> None:
    values = [float(value) for value in range(1, 101)]
    assert (percentile(values, 0.5), percentile(values, 0.99), percentile(values, 1.0)) == (50.0, 99.0, 100.0)
    assert percentile([7.0], 0.99) == 7.0 and percentile([], 0.5) == 0.0
    assert latency_summary([3.0, 1.0, 2.0], failures=1) == {"p50": 2.0, "p99": 3.0, "max": 3.0, "calls": 3,
                                                             "failures": 1}  # fmt: skip


class FakeApi(BaseHTTPRequestHandler):
    """The two reads the scale job makes: the job answers, the job list fails with an API error envelope."""

    def do_GET(self) -> None:
        if self.path.startswith("/api/jobs/scale"):
            send_json(self, 200, {"jobId": "scale", "state": "Running"})
        else:
            send_json(self, 503, {"error": {"code": "Busy", "message": "try again"}})

    def log_message(self, *args: Any) -> None:  # quiet
        pass


def test_the_reader_times_each_read_and_counts_failures_apart() -> None:
    with serving_on_a_thread(ThreadingHTTPServer(("127.0.0.1", 0), FakeApi)) as server:
        client = BatchClient(f"http://127.0.0.1:{server.server_address[1]}/api", "key")
        reader = ApiReader(client, "scale")
        reader.start()
        time.sleep(1.2)  # three rounds at one every half second
        reader.stopping.set()
        reader.join(timeout=10)
    summary = reader.summary()
    assert summary["job"]["calls"] >= 2 and summary["job"]["failures"] == 0
    assert summary["jobs"]["calls"] == 0 and summary["jobs"]["failures"] >= 2
    assert 0 < summary["job"]["p50"] <= summary["job"]["p99"]
    assert reader.errors and reader.errors[0].startswith("jobs: try again (HTTP 503 Busy)")


def test_rows_show_the_ratio_rss_and_both_reads() -> None:
    latency = {"p50": 40.0, "p99": 250.0, "max": 260.0, "calls": 300, "failures": 0}
    result = {
        "tasks": 10000, "slots": 50, "seconds": 231.0, "state": "Succeeded",
        "peak_rss_mb": {"devhost": 420.5, "aciemu": 41.0}, "api_ms": {"job": latency, "jobs": latency},
    }  # fmt: skip
    rows = dict(scale_rows(result, 22.0))
    assert rows["scale: 10000 tasks, 50 slots (s)"] == "231.0 (Succeeded)"
    assert rows["  / end-to-end job's time (target <= 10.5x)"] == "10.50x"
    assert "420.5 / 41.0" in rows.values()
    assert sum(value == "40.0 / 250.0 (300 calls, 0 failed)" for value in rows.values()) == 2
    assert dict(scale_rows(result, None))["  / end-to-end job's time (target <= 10.5x)"].startswith("n/a")
