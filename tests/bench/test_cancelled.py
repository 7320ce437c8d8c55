"""`bench.cancelled` on a real local stack, small: the cancelled job ends Cancelled, and a read of it makes no status
read for the tasks its chunks never started (only the job's own)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.cancelled import READS, cancelled_job

pytestmark = pytest.mark.e2e


def test_a_cancelled_waves_job_is_read_without_its_never_started_tasks(tmp_path: Path) -> None:
    # 60 tasks on 3 groups: a window of 6 (acibatch.plan.chunk_window), so most tasks are never started.
    result = cancelled_job(tmp_path, tasks=60, slots=3, reads=2)
    assert result["tasks"] == 60 and result["cancel_seconds"] > 0
    for name in READS:
        # The job's status is read once; a task that began (at most the window) may be read too, the 50-odd never
        # started ones are not.
        assert result[name]["status_reads"] <= 1 + 6, result
