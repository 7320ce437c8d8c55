"""Entity batches: an entity's queued operations run in its function, and callers get their answers.

One batch per entity is in flight at a time. An entity's queue stays stored until its batch's result has been
applied, so a crash while a worker runs it just runs it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Iterator
from typing import Any

from azure.functions._durable_functions import df_loads

from devhost import payloadlimits, queuepolling
from devhost.app import AppIndex
from devhost.durable.persistence import Persistence
from devhost.durable.records import EntityRecord
from devhost.durable.scheduler import Scheduler
from devhost.durable.vocabulary import EVENT_RAISED, DurableError, PayloadTooLarge, event, payload_text
from devhost.durable.workcount import Work, WorkCount
from devhost.durable.workers import Reply, Workers
from devhost.workers import WorkerExited
from localtools import fastjson

ENTITY_BATCH = 50  # operations per batch at most

# (instance id, event, execution id, sender): how an answer reaches the calling orchestration.
Deliver = Callable[[str, dict[str, Any], str | None, str], bool]


class Entities:
    def __init__(
        self, index: AppIndex, workers: Workers, persistence: Persistence, scheduler: Scheduler,
        queues: queuepolling.QueueLatency, deliver: Deliver, work: WorkCount,
    ) -> None:  # fmt: skip
        self.index = index
        self.workers = workers
        self.persistence = persistence
        self.scheduler = scheduler
        self.queues = queues
        self.deliver = deliver
        self.work = work
        self.records: dict[str, EntityRecord] = {}
        self.unsaved: dict[str, EntityRecord] | None = None  # a dict while a batch of steps runs

    # -- messages in ----------------------------------------------------------------------------------------

    def signal(self, entity_id: str, operation: str, input_text: str | None) -> None:
        """A client's signal (`signal_entity`)."""
        name = entity_id.split("@")[1]
        if name not in self.index.entities:
            raise DurableError(400, f"The function '{name}' doesn't exist, is disabled, or is not an entity function.")
        self.enqueue(entity_id, {"name": operation, "input": input_text, "isSignal": True})
        self.persistence.save_entity(self.records[entity_id])

    def enqueue(self, entity_id: str, operation: dict[str, Any]) -> None:
        record = self.records.setdefault(entity_id, EntityRecord(entity_id))
        record.queue.append(operation)
        self.work.add(Work.MESSAGE, "EntitySignal" if operation.get("isSignal") else "EntityCall")
        # From an orchestration (its id is the operation's parent) or from a client (signal_entity).
        if self.queues.arrive(entity_id, operation.get("parent") or queuepolling.CLIENT):
            self.scheduler.mark_ready(entity_id)

    def state(self, entity_id: str) -> tuple[Any, bool]:
        record = self.records.get(entity_id)
        if record is None or not record.exists or record.state is None:
            return None, False
        return df_loads(record.state), True

    # -- saving -----------------------------------------------------------------------------------------------

    def save_soon(self, record: EntityRecord) -> None:
        """Within a batch of steps, write the entity once when the batch commits: a busy entity's record holds
        its whole state, and every operation enqueued by every episode of the batch would rewrite it."""
        if self.unsaved is None:
            self.persistence.save_entity(record)
        else:
            self.unsaved[record.id] = record

    @contextlib.contextmanager
    def saved_at_end(self) -> Iterator[None]:
        self.unsaved = {}
        try:
            yield
        finally:
            unsaved, self.unsaved = self.unsaved, None
            for record in unsaved.values():
                self.persistence.save_entity(record)

    # -- batches ---------------------------------------------------------------------------------------------

    def begin(self, entity_id: str) -> None:
        """Send the entity's state and next operations to a worker; `end` applies the reply."""
        record = self.records.get(entity_id)
        if record is None or not record.queue or entity_id in self.scheduler.in_flight:
            return  # re-marked ready when the batch in flight ends
        info = self.index.entities.get(record.name)
        batch = record.queue[:ENTITY_BATCH]
        if info is None:
            failure = {"isError": True, "result": json.dumps(f"the entity function '{record.name}' does not exist")}
            self.apply(record, batch, [failure] * len(batch))
            return
        context = {
            "self": {"name": record.name, "key": record.key},
            "exists": record.exists,
            "state": record.state,
            "batch": [{"name": op["name"], "input": op.get("input"), "isSignal": op.get("isSignal", False)}
                      for op in batch],
        }  # fmt: skip
        reply = self.workers.invoke(info, fastjson.dumps(context), affinity=entity_id)
        self.work.add(Work.ENTITY_BATCH, record.name)
        for op in batch:
            self.work.add(Work.ENTITY_OPERATION, f"{record.name}.{op['name']}")
        self.scheduler.in_flight.add(entity_id)
        reply.add_done_callback(lambda done: self.scheduler.arrive(lambda: self.end(entity_id, batch, done)))

    def end(self, entity_id: str, batch: list[dict[str, Any]], reply: asyncio.Future[Reply]) -> None:
        self.scheduler.in_flight.discard(entity_id)
        record = self.records[entity_id]
        try:
            answer = fastjson.loads(reply.result()[1])
            new_state = answer.get("entityState") if answer.get("entityExists") else None
            too_big = payloadlimits.payload_error(f"state of entity {entity_id}", payload_text(new_state))
            if too_big is not None:
                raise PayloadTooLarge(too_big)  # the batch fails and the state stays as it was
            record.exists = bool(answer.get("entityExists"))
            record.state = new_state
            results = list(answer.get("results") or [])
        except WorkerExited:
            self.scheduler.mark_ready(entity_id, first=True)  # the operations are still queued: run them again
            return
        except Exception as exc:
            results = [{"isError": True, "result": json.dumps(str(exc))} for _ in batch]
        self.apply(record, batch, results)

    def apply(self, record: EntityRecord, batch: list[dict[str, Any]], results: list[dict[str, Any]]) -> None:
        with self.persistence.store.transaction():
            record.take(len(batch))
            self.save_soon(record)
            for op, result in zip(batch, results + [{}] * (len(batch) - len(results)), strict=False):
                if op.get("isSignal") or not op.get("parent"):
                    continue
                response: dict[str, Any] = {
                    "result": result.get("result") if result.get("result") is not None else "null"
                }
                if result.get("isError"):
                    response["exceptionType"] = "Error"
                answer = event(EVENT_RAISED, Name=op["id"], Input=json.dumps(response))
                self.deliver(op["parent"], answer, op.get("parentExecution"), record.id)
        if record.queue:
            # Straight back to the front: callers wait on these answers, and an entity behind every busy
            # orchestration would take a full round of the ready queue per ENTITY_BATCH operations.
            self.scheduler.mark_ready(record.id, first=True)
