"""The bench's machine-wide CPU reading, which bounds how fast the end-to-end job can be on this machine."""

from __future__ import annotations

import time

from bench.machine import MachineCpu, machine_cpu_row


def burn(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_busy_time_counts_work_done_in_between() -> None:
    before = MachineCpu.now()
    burn(0.4)
    after = MachineCpu.now()
    assert before is not None and after is not None
    used = after.since(before)
    # This process alone kept one core busy for 0.4 s; other processes can only add to it.
    assert used["cpu_seconds"] >= 0.3
    assert 0.0 < used["busy_share"] <= 1.0


def test_row_reads_seconds_and_share() -> None:
    assert machine_cpu_row({"cpu_seconds": 47.1, "busy_share": 0.842}) == "47.1 (84%)"
    assert machine_cpu_row(None) == "unknown (no /proc/stat)"
