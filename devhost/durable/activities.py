"""Running activities (and `call_http`'s built-in one) and turning their ends into history events."""

from __future__ import annotations

import asyncio
import json
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

from devhost import payloadlimits
from devhost.app import AppIndex
from devhost.durable.episode import HTTP_ACTIVITY
from devhost.durable.vocabulary import (
    TASK_COMPLETED,
    TASK_FAILED,
    FunctionTimeout,
    PayloadTooLarge,
    event,
    timeout_message,
)
from devhost.durable.workers import Workers
from devhost.workers import FunctionFailed

# (instance id, task id, execution id, TaskCompleted or TaskFailed event): what an ended activity tells the engine.
Ended = Callable[[str, int, str, dict[str, Any]], None]


class Activities:
    def __init__(
        self, index: AppIndex, workers: Workers, http_call: Callable[[dict[str, Any]], Awaitable[Any]],
        arrive: Callable[[Callable[[], None]], None], ended: Ended,
    ) -> None:  # fmt: skip
        self.index = index
        self.workers = workers
        self.http_call = http_call
        self.arrive = arrive
        self.ended = ended
        self.tasks: set[asyncio.Task[None]] = set()

    def run(self, instance_id: str, task_id: int, work: dict[str, Any]) -> None:
        task = asyncio.get_running_loop().create_task(self._run(instance_id, task_id, work))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _run(self, instance_id: str, task_id: int, work: dict[str, Any]) -> None:
        failed: tuple[str, str, str] | None = None  # type, message, details
        try:
            result_text = await self._result(work)
        except asyncio.CancelledError:
            raise
        except FunctionFailed as exc:
            failed = (exc.type, exc.message, exc.details)
        except Exception as exc:
            failed = (type(exc).__name__, str(exc), "".join(traceback.format_exception(exc))[-4000:])
        if failed is None:
            outcome = event(TASK_COMPLETED, TaskScheduledId=task_id, Result=result_text)
        else:
            reason = f"Activity function '{work['name']}' failed: {failed[0]}: {failed[1]}"
            outcome = event(TASK_FAILED, TaskScheduledId=task_id, Reason=reason, Details=failed[2])
        self.arrive(lambda: self.ended(instance_id, task_id, work["execution"], outcome))

    async def _result(self, work: dict[str, Any]) -> str:
        if work["name"] == HTTP_ACTIVITY:
            return json.dumps(await self.http_call(work["http"]))
        info = self.index.activities[work["name"].lower()]
        pending = self.workers.invoke(info, str(work.get("input") or "null").encode())
        await asyncio.wait({pending}, timeout=self.index.function_timeout)
        if not pending.done():
            self.workers.restart_holder(pending)
            raise FunctionTimeout(timeout_message(self.index.function_timeout, info.name))
        result_text = pending.result()[1].decode()
        too_big = payloadlimits.payload_error(f"result of activity '{work['name']}'", result_text)
        if too_big is not None:
            raise PayloadTooLarge(too_big)
        return result_text

    async def stop(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
