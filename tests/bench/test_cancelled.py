"""`bench.cancelled` on a real local stack, small: the cancelled job ends Cancelled, and a read of it makes no status
read for the tasks its chunks never started (only the job's own)."""

from __future__ import annotations

from pathlib import Path

import pytest

from acibatch.plan import chunk_ranges, chunk_window
from bench.cancelled import READS, cancelled_job

pytestmark = pytest.mark.e2e


def test_a_cancelled_waves_job_is_read_without_its_never_started_tasks(tmp_path: Path) -> None:
    tasks, slots = 60, 3
    began = len(chunk_ranges(tasks)) * (chunk_window(tasks, slots) or tasks)  # at most this many ever started
    assert began < tasks / 2
    result = cancelled_job(tmp_path, tasks=tasks, slots=slots, reads=3)
    assert result["tasks"] == tasks and result["cancel_seconds"] > 0
    for name in READS:
        # The median read: the job's status, and at most the tasks that began (a first read of a page reads those
        # once, then keeps their final records); never the 40-odd tasks the chunks ended without starting.
        assert result[name]["status_reads"] <= 1 + began, result
