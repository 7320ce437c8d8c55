"""devhost's CPU as the bench reads it from /proc (`bench/processcpu.py`), on real processes."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from bench.processcpu import children, cpu_seconds, cpu_used, devhost_cpu

# A parent that starts a child burning CPU, then waits: the parent stands for devhost, the child for a worker.
WORKER = "import time\\nend = time.process_time() + 0.5\\nwhile time.process_time() < end: pass\\ntime.sleep(60)"
BURNER = f"""
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "{WORKER}"])
print(child.pid, flush=True)
time.sleep(60)
"""


@pytest.fixture
def parent() -> Iterator[tuple[int, int]]:
    process = subprocess.Popen([sys.executable, "-c", BURNER], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    child = int(process.stdout.readline())
    try:
        yield process.pid, child
    finally:
        subprocess.run(["kill", str(child)], check=False)
        process.kill()
        process.wait()
        process.stdout.close()


def test_a_worker_burning_cpu_is_counted_under_workers(parent: tuple[int, int]) -> None:
    host, child = parent
    assert children(host) == [child]
    before = devhost_cpu(host)
    deadline = time.monotonic() + 30
    while (cpu_seconds(child) or 0.0) < 0.45 and time.monotonic() < deadline:  # the child burns 0.5 s of CPU
        time.sleep(0.05)
    after = devhost_cpu(host)
    used = cpu_used(after, before)
    assert used["workers"] == pytest.approx(after[str(child)] - before.get(str(child), 0.0), abs=0.002)
    assert after[str(child)] >= 0.45
    assert used["host"] < 0.2  # the parent only sleeps
    assert used["total"] == pytest.approx(used["host"] + used["workers"], abs=0.002)


def test_a_worker_started_in_between_counts_from_zero() -> None:
    assert cpu_used({"host": 2.0, "41": 1.5}, {"host": 1.0}) == {"host": 1.0, "workers": 1.5, "total": 2.5}


def test_a_process_that_is_gone_reads_none() -> None:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    assert cpu_seconds(process.pid) is None
    assert devhost_cpu(process.pid) == {}
