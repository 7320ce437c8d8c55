"""When devhost hands an activity to a worker: at once, inside the batch of steps that scheduled it, as DTFx's
Azure Storage provider adds an episode's activity messages to the work-item queue before it commits the
episode's history; the result is applied only through an arrival (a later batch, after that commit).

The features app's activities run through the real Durable SDK on `InProcessWorkers`; the workers are wrapped
only to note when each invocation is handed over.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest

from devhost.app import FunctionInfo
from devhost.durable.activities import Activities
from devhost.durable.vocabulary import TASK_COMPLETED, TASK_FAILED
from devhost.durable.workcount import WorkCount
from devhost.durable.workers import Reply
from devhost.inprocess import InProcessWorkers
from tests.devhost import test_engine_inprocess as engine_tests

# The SDK warns about untyped inputs; a worker does not stop for it (as in test_engine_inprocess.py).
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
workers = engine_tests.workers  # the features app in this process, as the engine tests load it


class Noting:
    """The in-process workers, noting the function of every invocation as it is handed over."""

    def __init__(self, inner: InProcessWorkers) -> None:
        self.inner = inner
        self.app_dir = inner.app_dir
        self.handed: list[str] = []

    def invoke(
        self, info: FunctionInfo, body: bytes = b"", affinity: str | None = None, **fields: Any
    ) -> asyncio.Future[Reply]:
        self.handed.append(info.name)
        return self.inner.invoke(info, body, affinity, **fields)

    def restart_holder(self, future: asyncio.Future[Reply]) -> None:
        self.inner.restart_holder(future)


async def no_http(request: dict[str, Any]) -> Any:
    raise AssertionError("no test here calls call_http")


def activities(workers: Noting) -> tuple[Activities, list[Callable[[], None]], list[tuple[Any, ...]]]:
    arrivals: list[Callable[[], None]] = []
    ended: list[tuple[Any, ...]] = []
    runner = Activities(
        workers.inner.index, workers, no_http, arrivals.append, lambda *args: ended.append(args), WorkCount()
    )
    return runner, arrivals, ended


async def arrived(arrivals: list[Callable[[], None]], count: int) -> None:
    for _ in range(500):
        if len(arrivals) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{len(arrivals)} of {count} activity results arrived")


async def test_an_activity_is_handed_to_its_worker_before_the_scheduling_step_yields(workers: InProcessWorkers) -> None:
    noting = Noting(workers)
    runner, arrivals, ended = activities(noting)
    # No await between the two calls and the check: the event loop is held, as a batch of steps holds it.
    runner.run("instance-1", 0, {"name": "say_hello", "input": json.dumps("Tokyo"), "execution": "e1"})
    runner.run("instance-1", 1, {"name": "square", "input": json.dumps(7), "execution": "e1"})
    assert noting.handed == ["say_hello", "square"]
    await arrived(arrivals, 2)
    assert ended == []  # a result waits for its arrival to be applied (after the scheduling batch commits)
    for arrival in arrivals:
        arrival()
    results = {task_id: event for _, task_id, _, event in ended}
    assert results[0]["EventType"] == TASK_COMPLETED and json.loads(results[0]["Result"]) == "Hello Tokyo!"
    assert results[1]["EventType"] == TASK_COMPLETED and json.loads(results[1]["Result"]) == 49


async def test_an_activity_the_app_lacks_fails_without_failing_the_step(workers: InProcessWorkers) -> None:
    noting = Noting(workers)
    runner, arrivals, ended = activities(noting)
    runner.run("instance-2", 3, {"name": "no_such_activity", "input": "null", "execution": "e2"})
    assert noting.handed == []
    await arrived(arrivals, 1)
    arrivals[0]()
    (instance_id, task_id, execution, outcome), *_ = ended
    assert (instance_id, task_id, execution) == ("instance-2", 3, "e2")
    assert outcome["EventType"] == TASK_FAILED and "no_such_activity" in outcome["Reason"]
