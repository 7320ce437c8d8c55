"""The host's side of its language workers (`devhost.workers`): frames written together, and lost with their worker.

Real worker processes of the `features` app, over their real sockets: no host, just the pool.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from devhost.app import AppIndex
from devhost.binding import worker_setting
from devhost.workers import OUTBOX_FRAMES, WorkerExited, WorkerPool

APP = Path(__file__).parent / "apps" / "features"


@pytest.fixture
async def pool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[WorkerPool, AppIndex]]:
    # The app's settings (workers inherit the environment); its timer is never due in a test.
    monkeypatch.setenv("FEATURES_MARK_DIR", str(tmp_path))
    monkeypatch.setenv("TICK_SCHEDULE", "0 0 0 1 1 *")
    # The Durable client binding points nowhere: these tests run activities only.
    workers = WorkerPool(APP, 1, "http://127.0.0.1:9", worker_setting("http://127.0.0.1:9/", "unused"))
    index = await workers.start()
    yield workers, index
    await workers.stop()


async def test_invocations_started_together_are_written_together_and_all_answered(
    pool: tuple[WorkerPool, AppIndex],
) -> None:
    workers, index = pool
    square = index.activities["square"]
    count = 2 * OUTBOX_FRAMES + 5
    # One synchronous stretch, as the engine's batch of steps: nothing is written until the loop is free again,
    # except every OUTBOX_FRAMES frames.
    replies = [workers.invoke(square, str(value).encode()) for value in range(count)]
    assert len(workers.slots[0].outbox) == count % OUTBOX_FRAMES
    answers = await asyncio.wait_for(asyncio.gather(*replies), timeout=30)
    assert [int(body) for _, body in answers] == [value * value for value in range(count)]
    assert workers.slots[0].outbox == []


async def test_frames_waiting_when_their_worker_dies_fail_and_the_replacement_serves_new_ones(
    pool: tuple[WorkerPool, AppIndex],
) -> None:
    workers, index = pool
    square = index.activities["square"]
    slot = workers.slots[0]
    waiting = [workers.invoke(square, str(value).encode()) for value in range(3)]
    assert slot.process is not None
    slot.process.kill()  # before the frames are written
    results = await asyncio.wait_for(asyncio.gather(*waiting, return_exceptions=True), timeout=30)
    assert all(isinstance(result, WorkerExited) for result in results), results
    # Invocations made after the loss go to the replacement, once it has started.
    _, body = await asyncio.wait_for(workers.invoke(square, b"7"), timeout=60)
    assert int(body) == 49
