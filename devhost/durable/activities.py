"""Running activities (and `call_http`'s built-in one) and turning their ends into history events."""

from __future__ import annotations

import asyncio
import json
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

from devhost import payloadlimits
from devhost.app import AppIndex, FunctionInfo
from devhost.durable.episode import HTTP_ACTIVITY
from devhost.durable.vocabulary import (
    TASK_COMPLETED,
    TASK_FAILED,
    FunctionTimeout,
    PayloadTooLarge,
    event,
    timeout_message,
)
from devhost.durable.workcount import Work, WorkCount
from devhost.durable.workers import Reply, Workers
from devhost.workers import FunctionFailed

# (instance id, task id, execution id, TaskCompleted or TaskFailed event): what an ended activity tells the engine.
Ended = Callable[[str, int, str, dict[str, Any]], None]
# What `_send` did: the function and its reply's future, None when nothing was sent, or why sending failed.
Sent = tuple[FunctionInfo, asyncio.Future[Reply]] | Exception | None


class Activities:
    def __init__(
        self, index: AppIndex, workers: Workers, http_call: Callable[[dict[str, Any]], Awaitable[Any]],
        arrive: Callable[[Callable[[], None]], None], ended: Ended, work: WorkCount,
    ) -> None:  # fmt: skip
        self.index = index
        self.workers = workers
        self.http_call = http_call
        self.arrive = arrive
        self.ended = ended
        self.work = work
        self.tasks: set[asyncio.Task[None]] = set()

    def run(self, instance_id: str, task_id: int, work: dict[str, Any]) -> None:
        self.work.add(Work.ACTIVITY, work["name"])
        self.work.add(Work.MESSAGE, "TaskScheduled")  # the work item on the activities' queue
        sent = self._send(work)
        task = asyncio.get_running_loop().create_task(self._run(instance_id, task_id, work, sent))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _send(self, work: dict[str, Any]) -> Sent:
        """Hand an app activity to a worker now, while the batch of steps that scheduled it still holds the
        event loop (a task created here would only start once the batch has committed).

        DTFx's Azure Storage provider does the same: it adds an episode's outbound messages (activity work items
        among them) to their queues before it commits the episode's history (`AzureStorageOrchestrationService.
        CompleteTaskOrchestrationWorkItemAsync`), so an activity may run before its TaskScheduled is stored. What
        must wait for the commit is applying the result, and it does: `arrive` applies it in a later batch.
        A crash in between runs the activity again after the restart (at least once, as in Azure)."""
        if work["name"] == HTTP_ACTIVITY:
            return None  # a coroutine of this process: it runs once the loop is free
        info = self.index.activities.get(work["name"].lower())
        if info is None:
            return None  # `_result` reports the missing function as the activity's failure
        try:
            return info, self.workers.invoke(info, str(work.get("input") or "null").encode())
        except Exception as exc:  # never fail the step that scheduled it: the activity fails instead
            return exc

    async def _run(self, instance_id: str, task_id: int, work: dict[str, Any], sent: Sent) -> None:
        failed: tuple[str, str, str] | None = None  # type, message, details
        try:
            result_text = await self._result(work, sent)
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

    async def _result(self, work: dict[str, Any], sent: Sent) -> str:
        if work["name"] == HTTP_ACTIVITY:
            return json.dumps(await self.http_call(work["http"]))
        if isinstance(sent, Exception):
            raise sent
        if sent is None:
            raise KeyError(work["name"].lower())  # no such activity function: what the index lookup raised
        info, pending = sent
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
