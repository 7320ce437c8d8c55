"""The 404 of a task's log or files before it has an attempt (`api.jobs.not_started`): a task that will never
start says how it ended and why, from its own record or, when it has none, from the job's progress entity."""

from __future__ import annotations

from typing import Any

import pytest

import api.jobs
from acibatch.records import JobProgress, TaskRecord, TaskState
from api.jobs import not_started

REASON = "the job was cancelled before this task started"


async def message(monkeypatch: pytest.MonkeyPatch, record: TaskRecord, held: JobProgress) -> tuple[int, str]:
    reads: list[Any] = []

    async def read_progress(*given: Any) -> JobProgress:
        reads.append(given)
        return held

    monkeypatch.setattr(api.jobs, "read_progress", read_progress)
    error = await not_started(None, "acme", "big", record, "LogNotAvailable", "no log exists")  # type: ignore[arg-type]
    assert error.code == "LogNotAvailable"
    return error.status, error.message + (" [progress read]" if reads else "")


async def test_a_task_a_stopping_jobs_chunk_never_started_says_so_with_the_chunks_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    held = JobProgress()
    held.end_unrun(["t2"], TaskState.CANCELLED, [REASON])
    status, text = await message(monkeypatch, TaskRecord(id="t2"), held)
    assert status == 404
    assert text == f"task 't2' was never started: it ended Cancelled ({REASON}); no log exists [progress read]"


async def test_a_skipped_task_says_it_ended_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    held = JobProgress()
    held.end_unrun(["t1"], TaskState.SKIPPED, ["task t0 failed"])
    _, text = await message(monkeypatch, TaskRecord(id="t1"), held)
    assert text.startswith("task 't1' was never started: it ended Skipped (task t0 failed);")


async def test_a_task_cancelled_as_it_began_says_so_from_its_own_record_without_reading_progress(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    record = TaskRecord(id="t0", state=TaskState.CANCELLED, error=REASON)
    _, text = await message(monkeypatch, record, JobProgress())
    assert text == f"task 't0' was never started: it ended Cancelled ({REASON}); no log exists"


async def test_a_task_still_waiting_has_not_started_yet(monkeypatch: pytest.MonkeyPatch) -> None:
    _, text = await message(monkeypatch, TaskRecord(id="t0"), JobProgress())
    assert text == "task 't0' has not started yet; no log exists [progress read]"
