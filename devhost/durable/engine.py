"""The Durable engine of devhost: it plays the Durable extension + DTFx for the Python SDK.

It follows `shared/reference/durable-functions-protocol.md`: the history shapes and sequence-number allocation
of §2.2-2.4, retries with DTFx semantics (§2.6), continue-as-new, terminate/suspend (§3), entities (§4).
User code runs in workers (`durable.workers`): an episode sends the instance's history to a worker and its
reply is applied when it arrives (`durable.episode` decides what it means), while the event loop goes on with
other instances, so the SDK's replay runs on another core. One episode per instance (and one batch per entity)
is in flight at a time. Events that make the SDK allocate retry ids are delivered alone, one per episode (§2.4),
while plain completions and external events are batched.

This module owns the instances and their transitions (start, deliver, finish, continue-as-new) and the episode
round trip; storage, scheduling, timers, activities, entities and client operations are their own modules.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from devhost import payloadlimits, queuepolling, sessions
from devhost.app import AppIndex, FunctionInfo
from devhost.durable import episode
from devhost.durable.activities import Activities
from devhost.durable.entities import Entities
from devhost.durable.persistence import Persistence
from devhost.durable.records import Instance, execution_started
from devhost.durable.runtime import InstanceRuntime
from devhost.durable.scheduler import Scheduler
from devhost.durable.timers import Timers
from devhost.durable.vocabulary import (
    EVENT_RAISED,
    ORCHESTRATOR_STARTED,
    RUNNING_STATES,
    SUB_COMPLETED,
    SUB_FAILED,
    TERMINAL_STATES,
    TIMER_FIRED,
    DurableError,
    event,
    instance_id_problem,
    iso,
    payload_text,
    unknown_orchestrator,
)
from devhost.durable.workcount import Work, WorkCount
from devhost.durable.workers import Reply, Workers, read_reply
from devhost.store import Store
from devhost.workers import WorkerExited
from localtools.fastjson import dumps_text as encode

log = logging.getLogger("devhost.durable")

WORKER_LOSSES_TOLERATED = 3  # an episode whose worker died this many times fails its orchestration
COALESCE_MIN_HISTORY = 200
COALESCE_SECONDS_PER_EVENT = 20e-6
COALESCE_MAX_SECONDS = 0.25


class Engine:
    """Owns instances and entities; `workers` runs the app's functions, `http_call` serves `call_http`."""

    def __init__(
        self, index: AppIndex, store: Store, workers: Workers,
        http_call: Callable[[dict[str, Any]], Awaitable[Any]],
    ) -> None:  # fmt: skip
        self.index = index
        self.store = store
        self.workers = workers
        self.instances: dict[str, Instance] = {}
        self.runtimes: dict[str, InstanceRuntime] = {}
        self.scheduler = Scheduler(self)
        self.work = WorkCount()  # what a backend would bill (`workcount`); read by the bench
        self.persistence = Persistence(store, self.runtime)
        # DEVHOST_QUEUE_LATENCY (`devhost.queuepolling`): when a delivered message is seen by its queue's poller.
        self.queues = queuepolling.QueueLatency(
            queuepolling.config_for(workers.app_dir), release=self.scheduler.mark_ready
        )
        self.entities = Entities(index, workers, self.persistence, self.scheduler, self.queues, self.deliver, self.work)
        self.timers = Timers(self.runtime, self.scheduler.arrive, self.timer_fired)
        self.activities = Activities(index, workers, http_call, self.scheduler.arrive, self.activity_done, self.work)
        self.session_mode = sessions.mode()
        # With sessions on, a worker holds each orchestration's past events: the host keeps no encoded copy of them
        # (it was a large share of its memory in a 10,000-task job) and encodes them again for a session miss.
        self.persistence.keep_played = self.session_mode != "1"
        self.loop_task: asyncio.Task[None] | None = None

    def runtime(self, instance_id: str) -> InstanceRuntime:
        """An existing instance's runtime, made on first use (code that only reads uses `self.runtimes.get`)."""
        found = self.runtimes.get(instance_id)
        if found is None:
            found = self.runtimes[instance_id] = InstanceRuntime()
        return found

    def release_runtime(self, instance_id: str) -> None:
        """Drop what a client operation on an id naming no instance (unknown, or purged) made to wait on."""
        if instance_id not in self.instances:
            self.runtimes.pop(instance_id, None)

    # -- lifecycle -------------------------------------------------------------------------------------------

    async def start(self) -> None:
        instances, entities = self.persistence.load()
        self.instances.update((instance.id, instance) for instance in instances)
        self.entities.records.update((record.id, record) for record in entities)
        for instance in instances:  # starting a missing child adds an instance
            if instance.status in TERMINAL_STATES:
                continue
            for task_id, activity in instance.activities.items():
                self.activities.run(instance.id, int(task_id), activity)
            for timer_id, fire_at in instance.timers.items():
                self.timers.arm(instance.id, instance.execution_id, int(timer_id), fire_at)
            for task_id, child in instance.children.items():
                # The parent was committed but the process died before the child was stored: start it now.
                if child["id"] not in self.instances:
                    parent = {"id": instance.id, "taskId": int(task_id), "execution": instance.execution_id}
                    self.start_child(child["name"], child["id"], child["input"], parent)
            if instance.pending and instance.status != "Suspended":
                self.scheduler.mark_ready(instance.id)
        for record in self.entities.records.values():
            if record.queue:
                self.scheduler.mark_ready(record.id)
        self.loop_task = asyncio.get_running_loop().create_task(self.scheduler.work())

    async def stop(self) -> None:
        if self.loop_task is not None:
            self.loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.loop_task
        for runtime in self.runtimes.values():
            for handle in runtime.timer_handles.values():
                handle.cancel()
        await self.activities.stop()

    # -- what the scheduler runs (`scheduler.Steps`) --------------------------------------------------------

    def begin(self, key: str) -> None:
        if key.startswith("@"):
            self.entities.begin(key)
        else:
            self.begin_episode(key)

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        return self.store.transaction()

    def batch(self) -> contextlib.AbstractContextManager[None]:
        return self.entities.saved_at_end()

    def coalescing_window(self, key: str) -> float:
        """How long an instance's new events may wait to be delivered together.

        The SDK replays the whole history on every episode, so an orchestration with a long history and many
        tasks still running (a fan-out) would cost O(n) per completion, O(n^2) in all. Waiting a time
        proportional to the history before the next episode batches completions, so replay stays a bounded
        fraction of the work and the total grows linearly. Short histories and entities are never delayed.
        """
        instance = self.instances.get(key)
        if instance is None or len(instance.history) < COALESCE_MIN_HISTORY:
            return 0.0
        if not (instance.activities or instance.children):
            return 0.0  # nothing else is coming: deliver now
        return min(COALESCE_MAX_SECONDS, len(instance.history) * COALESCE_SECONDS_PER_EVENT)

    # -- instances -------------------------------------------------------------------------------------------

    def orchestrator(self, name: str) -> FunctionInfo:
        info = self.index.orchestrators.get(name.lower())
        if info is None:
            raise unknown_orchestrator(name, [f.name for f in self.index.orchestrators.values()])
        return info

    def start_instance(
        self, name: str, instance_id: str | None, input_value: Any, parent: dict[str, Any] | None = None
    ) -> Instance:
        info = self.orchestrator(name)
        problem = payloadlimits.payload_error("orchestration input", payload_text(input_value))
        if problem is not None:
            raise DurableError(400, problem)
        instance_id = instance_id or uuid.uuid4().hex
        problem = instance_id_problem(instance_id)
        if problem is not None:
            raise DurableError(400, problem)
        existing = self.instances.get(instance_id)
        if existing is not None and existing.status in RUNNING_STATES:
            raise DurableError(409, f"An instance with ID '{instance_id}' already exists and is {existing.status}.")
        instance = Instance(id=instance_id, name=str(info.durable_name), input=input_value, parent=parent)
        instance.pending.append(execution_started(instance))
        self.instances[instance_id] = instance
        self.persistence.save(instance)
        self.work.add(Work.MESSAGE, "ExecutionStarted")
        if self.queues.arrive(instance_id, parent["id"] if parent else queuepolling.CLIENT):
            self.scheduler.mark_ready(instance_id)
        return instance

    def start_child(self, name: str, child_id: str, input_text: Any, parent: dict[str, Any]) -> None:
        existing = self.instances.get(child_id)
        if existing is not None and existing.status in RUNNING_STATES:
            return  # recreated after a restart: already there
        self.start_instance(name, child_id, input_text, parent)

    def deliver(
        self, instance_id: str, new_event: dict[str, Any], execution_id: str | None = None,
        sender: str | None = None,
    ) -> bool:  # fmt: skip
        """Queue an event for an instance; False when the instance is gone, finished or another execution.

        `sender`: the instance or entity that sent it, `queuepolling.CLIENT` for a client, None for the
        target's own messages (activity results); it decides the queue latency (`queuepolling`).
        """
        instance = self.instances.get(instance_id)
        if instance is None or instance.status in TERMINAL_STATES:
            return False
        if execution_id is not None and execution_id != instance.execution_id:
            return False
        self.work.add(Work.MESSAGE, str(new_event["EventType"]))
        if instance.status == "Suspended":
            instance.held.append(new_event)
            self.persistence.save(instance)
        else:
            instance.pending.append(new_event)
            gather = self.runtime(instance_id).gather
            timer = new_event["EventType"] == TIMER_FIRED  # visible from its fire time, seen at the next poll
            seen = self.queues.arrive(instance_id, queuepolling.SCHEDULED if timer else sender)
            if seen and (gather is None or not gather.holds(new_event)):
                self.scheduler.mark_ready(instance_id)
            self.persistence.save(instance, meta=False)  # only a new pending row (and activity rows) changed
        return True

    def finish(self, instance: Instance, status: str, output: Any, error: str | None) -> None:
        instance.status = status
        instance.output = output
        runtime = self.runtime(instance.id)
        runtime.end_execution()
        instance.take_pending()
        instance.held = []
        for task in list(instance.activities):
            self.end_activity(instance, task)
        instance.children = {}
        instance.timers = {}
        self.persistence.save(instance)
        parent = instance.parent
        if parent is not None:
            if status == "Completed":
                notice = event(SUB_COMPLETED, TaskScheduledId=parent["taskId"], Result=json.dumps(output))
            else:
                reason = error or f"the sub-orchestration was {status.lower()}"
                notice = event(SUB_FAILED, TaskScheduledId=parent["taskId"], Reason=reason, Details=None)
            parent_instance = self.instances.get(parent["id"])
            if parent_instance is not None:
                parent_instance.children.pop(str(parent["taskId"]), None)
            self.deliver(parent["id"], notice, parent.get("execution"), sender=instance.id)
        waiters, runtime.completion_waiters = runtime.completion_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        # Its history is stored and nothing runs on it any more: keep only its document in memory, as Azure keeps
        # a finished instance in its tables (a client operation waiting on it still holds its runtime's lists).
        instance.let_go_of_history()
        self.runtimes.pop(instance.id, None)

    def continue_as_new(self, instance: Instance, input_text: Any, carried: list[dict[str, Any]]) -> None:
        """Start the next generation as DTFx does (Azure Storage, the default backend).

        `carried`: the episode's external events that DTFx met after the shim had called ContinueAsNew; they are
        carried into the new history (`BehaviorOnContinueAsNew.Carryover`). Those it met before were handed to the
        old generation, which used them or lost them (the extension's `preserveUnprocessedEvents` is false for the
        out-of-process shim and the Python SDK has no such option). What arrived while the episode ran is for the
        next work item: raised events carry no execution id and reach the new generation; activity and
        sub-orchestration results, timers and entity answers name the old execution and are dropped.
        """
        old_requests = set(instance.entity_requests.values())  # entity answers are raised under the request id
        arrived = [
            item for item in instance.take_pending()
            if item["EventType"] == EVENT_RAISED and item.get("Name") not in old_requests
        ]  # fmt: skip
        self.runtime(instance.id).end_execution()
        instance.new_execution(input_text, uuid.uuid4().hex, time.time())
        instance.pending.extend([execution_started(instance), *carried, *arrived])
        instance.first_batch = 1 + len(carried)
        self.work.add(Work.MESSAGE, "ContinueAsNew")
        self.persistence.save(instance)
        self.scheduler.mark_ready(instance.id)

    def require(self, instance_id: str) -> Instance:
        instance = self.instances.get(instance_id)
        if instance is None:
            raise DurableError(404, f"No instance with ID '{instance_id}' was found.")
        return instance

    def forget(self, instance_id: str) -> None:
        """Drop a purged instance from memory and the store."""
        del self.instances[instance_id]
        self.runtimes.pop(instance_id, None)
        self.persistence.delete(instance_id)

    # -- activities and timers --------------------------------------------------------------------------------

    def end_activity(self, instance: Instance, task: str) -> None:
        instance.activities.pop(task, None)
        self.persistence.note_activity(instance.id, task)

    def activity_done(self, instance_id: str, task_id: int, execution: str, outcome: dict[str, Any]) -> None:
        current = self.instances.get(instance_id)
        if current is None or current.execution_id != execution:
            return
        self.end_activity(current, str(task_id))
        self.deliver(current.id, outcome, execution)

    def timer_fired(self, instance_id: str, timer_id: int, execution: str, fire_at: float) -> None:
        current = self.instances.get(instance_id)
        if current is None or current.execution_id != execution or str(timer_id) not in current.timers:
            return
        current.timers.pop(str(timer_id), None)
        self.deliver(current.id, event(TIMER_FIRED, TimerId=timer_id, FireAt=iso(fire_at)), execution)

    # -- episodes ---------------------------------------------------------------------------------------------

    def next_events(self, instance: Instance) -> list[dict[str, Any]]:
        """The next batch: plain events together, a retry-sensitive event alone (§2.4).

        They stay pending (and stored) until the episode that delivers them has been applied.
        """
        if instance.first_batch is not None:
            return instance.pending[: instance.first_batch]  # what arrived meanwhile waits for the next work item
        batch: list[dict[str, Any]] = []
        for candidate in instance.pending:
            sensitive = episode.retry_record_for(instance, candidate) is not None
            if sensitive and batch:
                break
            batch.append(candidate)
            if sensitive:
                break
        return batch

    def begin_episode(self, instance_id: str) -> None:
        """Send the instance's history and next events to a worker; `end_episode` applies the reply."""
        instance = self.instances.get(instance_id)
        if instance is None or instance.status in TERMINAL_STATES or instance.status == "Suspended":
            return
        runtime = self.runtime(instance_id)
        if not instance.pending or instance_id in self.scheduler.in_flight or runtime.settling:
            return  # re-marked ready when the episode in flight ends or the client operation is done
        info = self.index.orchestrators.get(instance.name.lower())
        delivered = self.next_events(instance)
        started = event(ORCHESTRATOR_STARTED)
        instance.status = "Running"
        if info is None:
            error = f"The orchestrator function '{instance.name}' no longer exists in the app."
            self.apply_episode(instance, started, delivered, episode.Reply({}, error))
            return
        context = {
            "input": instance.input_text(),
            "instanceId": instance.id,
            "isReplaying": False,
            "parentInstanceId": instance.parent["id"] if instance.parent else None,
            "upperSchemaVersion": 1,
            "upperSchemaVersionNew": 2,
        }
        execution = instance.execution_id
        fields: dict[str, Any] = {}
        past = 0
        if self.session_mode != "0":
            held, runtime.session = runtime.session, None
            if held is not None and held[0] == execution and held[1] <= len(instance.history):
                past = held[1]
            fields["session"] = {"instance": instance_id, "execution": execution, "past": past}
        first = 0 if self.session_mode == "verify" else past  # verify mode replays the whole history as well
        body = self.context_json(instance, [started, *delivered], context, first).encode()
        reply = self.workers.invoke(info, body, affinity=instance.id, **fields)
        self.work.add(Work.EPISODE, instance.name)
        self.scheduler.in_flight.add(instance_id)
        replayed = len(instance.history) + 1 + len(delivered)
        reply.add_done_callback(
            lambda done: self.scheduler.arrive(
                lambda: self.end_episode(instance_id, execution, started, delivered, done, replayed)
            )
        )

    def end_episode(
        self, instance_id: str, execution: str, started: dict[str, Any], delivered: list[dict[str, Any]],
        reply: asyncio.Future[Reply], replayed: int,
    ) -> None:  # fmt: skip
        self.scheduler.in_flight.discard(instance_id)
        try:
            instance = self.instances.get(instance_id)
            if instance is None or instance.execution_id != execution or instance.status in TERMINAL_STATES:
                return  # nothing of that execution is left to apply the episode to
            runtime = self.runtime(instance_id)
            try:
                answer, kept = read_reply(reply)
            except WorkerExited as exc:
                runtime.worker_losses += 1
                if runtime.worker_losses < WORKER_LOSSES_TOLERATED:
                    return  # the events are still pending: the episode runs again
                answer, kept = episode.Reply({}, f"{exc} ({runtime.worker_losses} times in a row)"), False
            if answer is None:
                self.scheduler.mark_ready(instance_id, first=True)  # a session miss: send the whole history
                return
            runtime.worker_losses = 0
            self.apply_episode(instance, started, delivered, answer)
            if kept and answer.error is None and instance.status not in TERMINAL_STATES:
                runtime.session = (execution, replayed)  # where the worker's session now ends
        finally:
            self.after_episode(instance_id)

    def apply_episode(
        self, instance: Instance, started: dict[str, Any], delivered: list[dict[str, Any]], reply: episode.Reply
    ) -> None:
        """Apply a reply (`episode.apply_reply` decides) and carry out what it asks for, in one transaction."""
        execution = instance.execution_id  # a timer the last episode of a generation armed belongs to that one
        with self.store.transaction():
            outcome = episode.apply_reply(
                instance, started, delivered, reply, app=self.index, now=time.time(),
                new_request_id=lambda: str(uuid.uuid4()),
            )  # fmt: skip
            later: list[episode.Effect] = []
            for effect in outcome.effects:
                if isinstance(effect, episode.RunActivity):
                    self.persistence.note_activity(instance.id, str(effect.task_id))
                    later.append(effect)
                elif isinstance(effect, episode.StartChild):
                    self.start_child(effect.name, effect.instance_id, effect.input, effect.parent)
                elif isinstance(effect, episode.SendToEntity):
                    self.entities.enqueue(effect.entity_id, effect.operation)
                    self.entities.save_soon(self.entities.records[effect.entity_id])
                else:
                    later.append(effect)  # timers, like activities, start once the episode is applied
            if outcome.stuck is not None:
                self.report_stuck(instance, outcome.stuck.blocked_at, outcome.stuck.waiting_for)
            end = outcome.end
            if isinstance(end, episode.Failed):
                reason = f"Orchestrator function '{instance.name}' failed: {end.error}"
                self.finish(instance, "Failed", reason, end.error)
            elif isinstance(end, episode.Completed):
                self.finish(instance, "Completed", end.output, None)
            elif isinstance(end, episode.ContinuedAsNew):
                self.continue_as_new(instance, end.input, end.carried)
            else:
                self.runtime(instance.id).gather = outcome.gather
                self.persistence.save(instance)
        for effect in later:
            if isinstance(effect, episode.RunActivity):
                self.activities.run(instance.id, effect.task_id, effect.work)
            elif isinstance(effect, episode.ArmTimer):
                self.timers.arm(instance.id, execution, effect.timer_id, effect.fire_at)

    @staticmethod
    def report_stuck(instance: Instance, action: int | None, waiting_for: str) -> None:
        """The SDK went on, but the shim still awaits an earlier action, as it would in Azure: what follows it
        (and the orchestration's end) waits too."""
        log.warning(
            "orchestration %s: the Durable extension's shim still waits on its action #%s (%s), so in Azure the "
            "actions after it are not scheduled and the orchestration neither completes nor fails until it ends. "
            "Cancel timers you no longer wait for, and do not rely on an event the SDK handed to a second waiter "
            "(azure-functions-durable-python#507).",
            instance.id, action, waiting_for,
        )  # fmt: skip

    def after_episode(self, instance_id: str) -> None:
        runtime = self.runtimes.get(instance_id)  # read only: none when the instance was purged meanwhile
        for waiter in runtime.settling if runtime is not None else []:
            if not waiter.done():
                waiter.set_result(None)
        instance = self.instances.get(instance_id)
        if instance is not None and instance.pending and instance.status == "Running":
            gather = runtime.gather if runtime is not None else None
            if gather is None or not gather.waits(len(instance.pending)):
                self.scheduler.mark_ready(instance_id)

    def context_json(
        self, instance: Instance, new_events: list[dict[str, Any]], fields: dict[str, Any], first: int = 0
    ) -> str:
        """The orchestration trigger's JSON: past events (IsPlayed) from `first` on + new ones, then the fields."""
        past = self.persistence.played_from(instance, first)
        history = ",".join([*past, *(encode(item) for item in new_events)])
        return f'{{"history":[{history}],{encode(fields)[1:]}'
