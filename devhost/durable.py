"""The Durable Functions engine of devhost: histories, replay episodes, activities, timers, entities.

It plays the role of the Durable extension + DTFx for the Python SDK, following
`shared/reference/durable-functions-protocol.md`: the history shapes and sequence-number allocation of
§2.2-2.4, retries with DTFx semantics (§2.6), continue-as-new, terminate/suspend (§3), entities (§4).
User code runs in language workers (`devhost.workers`): an episode sends the instance's history to a worker
and its actions are applied when the reply arrives, while the event loop goes on with other instances, so the
SDK's replay runs on another core. One episode per instance (and one batch per entity) is in flight at a time.
Events that make the SDK allocate retry ids are delivered alone, one per episode (§2.4), while plain
completions and external events are batched.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import logging
import time
import traceback
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from azure.durable_functions.models.actions import ActionType
from azure.functions._durable_functions import df_loads

from devhost import fanin, payloadlimits, queuepolling, sessions, shim
from devhost.app import AppIndex, FunctionInfo
from devhost.store import Store
from devhost.workers import FunctionFailed, Reply, WorkerExited, WorkerPool
from localtools import fastjson
from localtools.fastjson import dumps_text as encode

log = logging.getLogger("devhost.durable")

RUNNING_STATES = {"Pending", "Running", "Suspended", "ContinuedAsNew"}
TERMINAL_STATES = {"Completed", "Failed", "Terminated", "Canceled"}
ENTITY_BATCH = 50
WORKER_LOSSES_TOLERATED = 3  # an episode whose worker died this many times fails its orchestration
BATCH_SECONDS = 0.02  # the longest the event loop is held by one batch of steps (one commit)
COALESCE_MIN_HISTORY = 200
COALESCE_SECONDS_PER_EVENT = 20e-6
COALESCE_MAX_SECONDS = 0.25
OUT_OF_PROC_MARKER = "\n\n$OutOfProcData$:"
ROW_FIELDS = frozenset({"history", "pending", "activities"})

# DTFx EventType numbers (§2.2).
EXECUTION_STARTED, EXECUTION_COMPLETED, EXECUTION_TERMINATED = 0, 1, 3
TASK_SCHEDULED, TASK_COMPLETED, TASK_FAILED = 4, 5, 6
SUB_CREATED, SUB_COMPLETED, SUB_FAILED = 7, 8, 9
TIMER_CREATED, TIMER_FIRED = 10, 11
ORCHESTRATOR_STARTED, ORCHESTRATOR_COMPLETED = 12, 13
EVENT_SENT, EVENT_RAISED = 14, 15


def iso(moment: float | None = None) -> str:
    """`2026-11-25T01:57:46.123456Z`: always microseconds and Z (the shape `devhost.fastpaths` reads fast)."""
    moment = time.time() if moment is None else moment
    seconds = int(moment // 1)
    return f"{_iso_seconds(seconds)}.{int((moment - seconds) * 1e6):06d}Z"


@functools.lru_cache(maxsize=64)
def _iso_seconds(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def parse_iso(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def event(kind: int, event_id: int = -1, **fields: Any) -> dict[str, Any]:
    return {"EventType": kind, "EventId": event_id, "IsPlayed": False, "Timestamp": iso(), **fields}


class FunctionTimeout(Exception):
    """The host's `FunctionTimeoutException`: the function ran past host.json's functionTimeout."""


class PayloadTooLarge(Exception):
    """A payload over the backend's limit (`devhost.payloadlimits`)."""


def timeout_message(seconds: float | None, function: str) -> str:
    """The Functions host's message, with the timeout as a .NET TimeSpan (`hh:mm:ss`)."""
    whole = int(seconds or 0)
    span = f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"
    return f"Timeout value of {span} was exceeded by function: Functions.{function}"


class DurableError(Exception):
    """A client request that cannot be served (unknown function, bad id, wrong state)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Instance:
    id: str
    name: str
    input: Any
    execution_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    status: str = "Pending"
    output: Any = None
    custom_status: Any = None
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    parent: dict[str, Any] | None = None  # {"id", "taskId", "execution"}
    history: list[dict[str, Any]] = field(default_factory=list)
    pending: list[dict[str, Any]] = field(default_factory=list)
    next_id: int = 0
    seen: int = 0
    action_ids: list[int | None] = field(default_factory=list)
    retries: dict[str, dict[str, Any]] = field(default_factory=dict)  # by action index
    activities: dict[str, dict[str, Any]] = field(default_factory=dict)  # outstanding, by task id
    timers: dict[str, float] = field(default_factory=dict)  # outstanding fire times, by timer id
    children: dict[str, dict[str, Any]] = field(default_factory=dict)  # outstanding children, by task id
    held: list[dict[str, Any]] = field(default_factory=list)  # events held while suspended
    pending_consumed: int = 0  # how many pending events were ever taken off the front (row numbering)
    # Entity calls' request ids by task id (text keys, as stored): what answers each one (`devhost.shim`).
    entity_requests: dict[str, str] = field(default_factory=dict)
    # Set by a continue-as-new: how many pending events (ExecutionStarted and the events carried over) make the new
    # generation's first episode, which DTFx runs inside the old one's work item (`Engine.continue_as_new`).
    first_batch: int | None = None

    def meta(self) -> dict[str, Any]:
        """Everything but the row-stored parts (history, pending events, outstanding activities)."""
        return {k: v for k, v in self.__dict__.items() if k not in ROW_FIELDS}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Instance:
        return cls(**data)

    def input_text(self) -> str | None:
        if self.input is None:
            return None
        return self.input if isinstance(self.input, str) else json.dumps(self.input)

    def take_pending(self, count: int | None = None) -> list[dict[str, Any]]:
        """Remove events from the front of the pending queue (all of them by default)."""
        count = len(self.pending) if count is None else count
        taken, self.pending = self.pending[:count], self.pending[count:]
        self.pending_consumed += len(taken)
        return taken


@dataclass
class Persisted:
    """What of an instance is already in the store, so a save writes only the difference."""

    execution: str = ""
    history: int = 0
    pending_upto: int = 0
    pending_from: int = 0  # pending rows below this are deleted
    activities: set[str] = field(default_factory=set)
    changed_activities: set[str] = field(default_factory=set)  # added or removed since the last save


@dataclass
class EntityRecord:
    id: str  # "@name@key"
    exists: bool = False
    state: str | None = None
    queue: list[dict[str, Any]] = field(default_factory=list)
    updated: float = field(default_factory=time.time)

    @property
    def name(self) -> str:
        return self.id.split("@")[1]

    @property
    def key(self) -> str:
        return self.id.split("@", 2)[2]

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EntityRecord:
        return cls(**data)


def execution_started(instance: Instance) -> dict[str, Any]:
    """The first event of an execution (`Version` is mandatory for the SDK, even when null)."""
    return event(
        EXECUTION_STARTED,
        Name=instance.name,
        Input=instance.input_text(),
        Version=None,
        OrchestrationInstance={"InstanceId": instance.id, "ExecutionId": instance.execution_id},
        ParentInstance=instance.parent,
    )


def played_text(stored: str) -> str:
    """A stored event's JSON as replay sees it. `event()` puts IsPlayed third, after two integers, so the
    first match is that key and never text inside the event's input or result."""
    return stored.replace('"IsPlayed":false', '"IsPlayed":true', 1)


def outstanding_children(instance: Instance) -> dict[str, dict[str, Any]]:
    """Sub-orchestrations created and not finished, from the stored events. A child's end is delivered to its
    parent without rewriting the parent's metadata document, so after a restart only the events are exact."""
    finished = {
        str(item.get("TaskScheduledId"))
        for item in (*instance.history, *instance.pending, *instance.held)
        if item["EventType"] in {SUB_COMPLETED, SUB_FAILED}
    }
    return {
        str(item["EventId"]): {"id": item["InstanceId"], "name": item["Name"], "input": item.get("Input")}
        for item in instance.history
        if item["EventType"] == SUB_CREATED and str(item["EventId"]) not in finished
    }


def payload_text(value: Any) -> str | None:
    """An action's or event's payload as the JSON text the backend stores (the SDK sends most as text already)."""
    return value if value is None or isinstance(value, str) else json.dumps(value)


def describe_action(action: dict[str, Any]) -> str:
    kind = action.get("actionType")
    name = action.get("functionName") or action.get("operation") or ""
    label = ActionType(kind).name.lower() if kind in ActionType._value2member_map_ else f"action {kind}"
    return f"{label} {name}".strip()


def end_payload_error(actions: list[dict[str, Any]], state: dict[str, Any]) -> str | None:
    """Why the payload an episode ends with (its output, or the next execution's input) is refused, if it is."""
    if is_continue_as_new(actions):
        return payloadlimits.payload_error("continue-as-new input", payload_text(actions[-1].get("input")))
    return payloadlimits.payload_error("orchestration output", json.dumps(state.get("output")))


def is_continue_as_new(actions: list[dict[str, Any]]) -> bool:
    return bool(actions) and actions[-1].get("actionType") == ActionType.CONTINUE_AS_NEW


def flatten(actions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    flat: list[dict[str, Any]] = []
    for action in actions:
        if action.get("actionType") in {ActionType.WHEN_ANY, ActionType.WHEN_ALL}:
            flat.extend(flatten(action.get("compoundActions") or []))
        else:
            flat.append(action)
    return flat


class Engine:
    """Owns instances and entities; `invoke` runs user functions (provided by the host)."""

    def __init__(
        self,
        index: AppIndex,
        store: Store,
        workers: WorkerPool,
        http_call: Callable[[dict[str, Any]], Any],
    ) -> None:
        self.index = index
        self.store = store
        self.workers = workers
        self.http_call = http_call
        self.instances: dict[str, Instance] = {}
        self.entities: dict[str, EntityRecord] = {}
        self.ready: deque[str] = deque()
        self.ready_set: set[str] = set()
        self.ready_since: dict[str, float] = {}
        self.wakeup = asyncio.Event()
        self.timer_handles: dict[tuple[str, str], asyncio.TimerHandle] = {}
        self.persisted: dict[str, Persisted] = {}
        self.tasks: set[asyncio.Future[Any]] = set()
        self.worker: asyncio.Task[None] | None = None
        self.completion_waiters: dict[str, list[asyncio.Future[None]]] = {}
        self.played_json: dict[str, tuple[str, list[str]]] = {}  # instance -> (execution, serialized history)
        self.arrivals: list[Callable[[], None]] = []  # finished activities and fired timers, for the next batch
        self.in_flight: set[str] = set()  # instances and entities whose episode or batch a worker is running
        self.settling: dict[str, list[asyncio.Future[None]]] = {}  # client operations waiting for an episode
        self.worker_losses: dict[str, int] = {}
        self.unsaved_entities: dict[str, EntityRecord] | None = None  # a dict while a batch runs
        self.gathers: dict[str, fanin.Gather] = {}  # instances blocked on a task_all (devhost.fanin)
        # Orchestration sessions (`devhost.sessions`): how far into which execution's history each instance's
        # worker has replayed, as of the last episode applied; the next episode sends only what follows.
        self.session_mode = sessions.mode()
        self.session_at: dict[str, tuple[str, int]] = {}
        # DEVHOST_QUEUE_LATENCY (`devhost.queuepolling`): when a delivered message is seen by its queue's poller.
        self.queues = queuepolling.QueueLatency(queuepolling.config_for(workers.app_dir), release=self.mark_ready)

    # -- lifecycle -------------------------------------------------------------------------------------------

    async def start(self) -> None:
        history, pending, activities = (self.store.rows(t) for t in ("history", "pending", "activities"))
        for data in self.store.load_all("instances"):
            instance = Instance.from_dict(data)
            instance.history = [item for _, item in history.get(instance.id, [])]
            instance.pending = [item for seq, item in pending.get(instance.id, []) if seq >= instance.pending_consumed]
            instance.activities = {str(task): work for task, work in activities.get(instance.id, [])}
            instance.children = outstanding_children(instance)
            if not instance.entity_requests:  # stored before devhost kept them: read them off the events once
                instance.entity_requests = shim.entity_requests(instance.history)
            self.persisted[instance.id] = Persisted(
                instance.execution_id,
                len(instance.history),
                instance.pending_consumed + len(instance.pending),
                0,  # rows of consumed events may survive a crash: the first save deletes them
                set(instance.activities),
            )
            self.instances[instance.id] = instance
        for data in self.store.load_all("entities"):
            record = EntityRecord.from_dict(data)
            self.entities[record.id] = record
        for instance in list(self.instances.values()):  # starting a missing child adds an instance
            if instance.status in TERMINAL_STATES:
                continue
            for task_id, activity in instance.activities.items():
                self.run_activity(instance, int(task_id), activity)
            for timer_id, fire_at in instance.timers.items():
                self.schedule_timer(instance, int(timer_id), fire_at)
            for task_id, child in instance.children.items():
                # The parent was committed but the process died before the child was stored: start it now.
                if child["id"] not in self.instances:
                    parent = {"id": instance.id, "taskId": int(task_id), "execution": instance.execution_id}
                    self.start_child(child["name"], child["id"], child["input"], parent)
            if instance.pending and instance.status != "Suspended":
                self.mark_ready(instance.id)
        for record in self.entities.values():
            if record.queue:
                self.mark_ready(record.id)
        self.worker = asyncio.get_running_loop().create_task(self.work())

    async def stop(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.worker
        for handle in self.timer_handles.values():
            handle.cancel()
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)

    def save(self, instance: Instance, meta: bool = True) -> None:
        """Write what changed since the last save: new history, the pending queue's ends, activity rows."""
        instance.updated = time.time()
        done = self.persisted.setdefault(instance.id, Persisted())
        with self.store.transaction():
            if done.execution != instance.execution_id or done.history > len(instance.history):
                # A new execution (start over a finished id, continue-as-new): its rows start afresh.
                for table in ("history", "pending", "activities"):
                    self.store.delete_rows(table, instance.id)
                done = self.persisted[instance.id] = Persisted(
                    instance.execution_id, 0, instance.pending_consumed, instance.pending_consumed,
                    changed_activities=done.changed_activities,  # every outstanding one is new to this execution
                )  # fmt: skip
            if len(instance.history) > done.history:
                texts = [encode(item) for item in instance.history[done.history :]]
                self.store.append_encoded("history", instance.id, done.history, texts)
                self.remember_played(instance, done.history, texts)
                done.history = len(instance.history)
            if done.pending_from < instance.pending_consumed:
                self.store.delete_rows("pending", instance.id, below=instance.pending_consumed)
                done.pending_from = instance.pending_consumed
            end = instance.pending_consumed + len(instance.pending)
            start = max(done.pending_upto, instance.pending_consumed)
            if end > start:
                fresh = instance.pending[start - instance.pending_consumed :]
                self.store.append_rows("pending", instance.id, start, fresh)
            done.pending_upto = end
            # Only the activities scheduled or finished since the last save: a fan-out has thousands outstanding.
            for task in done.changed_activities:
                if task in instance.activities and task not in done.activities:
                    self.store.put_row("activities", instance.id, int(task), instance.activities[task])
                    done.activities.add(task)
                elif task not in instance.activities and task in done.activities:
                    self.store.delete_rows("activities", instance.id, key=int(task))
                    done.activities.discard(task)
            done.changed_activities.clear()
            if meta:
                # The output and custom status are the user's values: stored as `json` writes them.
                self.store.put("instances", instance.id, instance.meta(), user_values=True)

    def set_activity(self, instance: Instance, task: str, work: dict[str, Any] | None) -> None:
        """Record an outstanding activity (or its end, with None) so the next save writes just that row."""
        if work is None:
            instance.activities.pop(task, None)
        else:
            instance.activities[task] = work
        self.persisted.setdefault(instance.id, Persisted()).changed_activities.add(task)

    def save_entity(self, record: EntityRecord) -> None:
        record.updated = time.time()
        self.store.put("entities", record.id, record.to_dict())

    def save_entity_soon(self, record: EntityRecord) -> None:
        """Within a batch, write the entity once when the batch commits: a busy entity's record holds its
        whole state, and every operation enqueued by every episode of the batch would rewrite it."""
        if self.unsaved_entities is None:
            self.save_entity(record)
        else:
            self.unsaved_entities[record.id] = record

    def mark_ready(self, key: str, first: bool = False) -> None:
        if key not in self.ready_set:
            self.ready_set.add(key)
            self.ready_since.setdefault(key, time.monotonic())
            if first:
                self.ready.appendleft(key)
            else:
                self.ready.append(key)
            self.wakeup.set()

    def coalescing_window(self, key: str) -> float:
        """How long an instance's new events may wait to be delivered together.

        The SDK replays the whole history on every episode, so an orchestration with a long history and many
        tasks still running (a fan-out) would cost O(n) per completion, O(n^2) in all. Waiting a time
        proportional to the history before the next episode batches completions, so replay stays a bounded
        fraction of the work and the total grows linearly. Short histories are never delayed.
        """
        instance = self.instances.get(key)
        if instance is None or len(instance.history) < COALESCE_MIN_HISTORY:
            return 0.0
        if not (instance.activities or instance.children):
            return 0.0  # nothing else is coming: deliver now
        return min(COALESCE_MAX_SECONDS, len(instance.history) * COALESCE_SECONDS_PER_EVENT)

    async def work(self) -> None:
        while True:
            if not (self.ready or self.arrivals):
                self.wakeup.clear()
                await self.wakeup.wait()
                continue
            ran, wait = self.run_batch()
            await asyncio.sleep(0 if ran or wait is None else wait)

    def run_batch(self) -> tuple[int, float | None]:
        """Run ready steps for up to BATCH_SECONDS in one transaction (one commit for the lot).

        Returns how many steps ran and, when none could, how long until the first coalescing window ends.
        Nothing started by a step (activities, timers) runs before the commit: they need the event loop,
        which this synchronous batch holds until it has committed.
        """
        deadline = time.monotonic() + BATCH_SECONDS
        ran, wait, deferred = 0, None, 0
        with self.store.transaction(), self.entities_saved_at_end():
            arrivals, self.arrivals = self.arrivals, []
            for arrival in arrivals:
                self.run_step(arrival)
            while self.ready and deferred < len(self.ready) and time.monotonic() < deadline:
                key = self.ready.popleft()
                window = 0.0 if key.startswith("@") else self.coalescing_window(key)
                waited = time.monotonic() - self.ready_since.get(key, 0.0)
                if waited < window:
                    self.ready.append(key)  # let more events arrive; others go first
                    deferred += 1
                    wait = window - waited if wait is None else min(wait, window - waited)
                    continue
                deferred = 0
                self.ready_set.discard(key)
                self.ready_since.pop(key, None)
                step = self.begin_entity_batch if key.startswith("@") else self.begin_episode
                self.run_step(functools.partial(step, key))
                ran += 1
        return ran, wait

    @contextlib.contextmanager
    def entities_saved_at_end(self) -> Iterator[None]:
        self.unsaved_entities = {}
        try:
            yield
        finally:
            unsaved, self.unsaved_entities = self.unsaved_entities, None
            for record in unsaved.values():
                self.save_entity(record)

    def run_step(self, step: Callable[[], None]) -> None:
        try:
            with self.store.transaction():
                step()
        except Exception:
            log.exception("internal error while running %s", step)

    # -- client operations -----------------------------------------------------------------------------------

    def orchestrator(self, name: str) -> FunctionInfo:
        info = self.index.orchestrators.get(name.lower())
        if info is None:
            known = ", ".join(sorted(f.name for f in self.index.orchestrators.values()))
            raise DurableError(
                400,
                f"The function '{name}' doesn't exist, is disabled, or is not an orchestrator function. "
                f"Additional info: The following are the known orchestrator functions: {known}.",
            )
        return info

    def start_instance(
        self, name: str, instance_id: str | None, input_value: Any, parent: dict[str, Any] | None = None
    ) -> Instance:
        info = self.orchestrator(name)
        problem = payloadlimits.payload_error("orchestration input", payload_text(input_value))
        if problem is not None:
            raise DurableError(400, problem)
        instance_id = instance_id or uuid.uuid4().hex
        if (
            instance_id.startswith("@")
            or any(c in instance_id for c in "/\\?#")
            or len(instance_id) > 256
            or any(ord(c) < 32 for c in instance_id)
        ):
            raise DurableError(400, f"Instance ID '{instance_id[:80]}' contains invalid characters or is too long.")
        existing = self.instances.get(instance_id)
        if existing is not None and existing.status in RUNNING_STATES:
            raise DurableError(409, f"An instance with ID '{instance_id}' already exists and is {existing.status}.")
        instance = Instance(id=instance_id, name=str(info.durable_name), input=input_value, parent=parent)
        instance.pending.append(execution_started(instance))
        self.instances[instance_id] = instance
        self.save(instance)
        if self.queues.arrive(instance_id, parent["id"] if parent else queuepolling.CLIENT):
            self.mark_ready(instance_id)
        return instance

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
        if instance.status == "Suspended":
            instance.held.append(new_event)
            self.save(instance)
        else:
            instance.pending.append(new_event)
            gather = self.gathers.get(instance_id)
            timer = new_event["EventType"] == TIMER_FIRED  # visible from its fire time, seen at the next poll
            seen = self.queues.arrive(instance_id, queuepolling.SCHEDULED if timer else sender)
            if seen and (gather is None or not gather.holds(new_event)):
                self.mark_ready(instance_id)
            self.save(instance, meta=False)  # only a new pending row (and activity rows) changed
        return True

    def raise_event(self, instance_id: str, name: str, input_text: str | None) -> None:
        instance = self.instances.get(instance_id)
        if instance is None:
            raise DurableError(404, f"No instance with ID '{instance_id}' was found.")
        if instance.status in TERMINAL_STATES:
            raise DurableError(410, f"The instance '{instance_id}' is {instance.status} and cannot receive events.")
        problem = payloadlimits.payload_error(f"payload of event '{name}'", input_text)
        if problem is not None:
            raise DurableError(400, problem)
        self.deliver(instance_id, event(EVENT_RAISED, Name=name, Input=input_text), sender=queuepolling.CLIENT)

    def terminate(self, instance_id: str, reason: str | None) -> None:
        instance = self.require(instance_id)
        if instance.status in TERMINAL_STATES:
            raise DurableError(410, f"The instance '{instance_id}' is already {instance.status}.")
        instance.history.append(event(EXECUTION_TERMINATED, Input=reason))
        self.finish(instance, "Terminated", reason, None)

    def suspend(self, instance_id: str) -> None:
        instance = self.require(instance_id)
        if instance.status in TERMINAL_STATES:
            raise DurableError(410, f"The instance '{instance_id}' is already {instance.status}.")
        instance.status = "Suspended"
        instance.held = instance.held + instance.take_pending()
        self.save(instance)

    def resume(self, instance_id: str) -> None:
        instance = self.require(instance_id)
        if instance.status != "Suspended":
            raise DurableError(410, f"The instance '{instance_id}' is {instance.status}, not Suspended.")
        instance.status = "Running"
        instance.pending, instance.held = instance.held + instance.take_pending(), []
        self.save(instance)
        if instance.pending:
            self.mark_ready(instance.id)

    def restart(self, instance_id: str, new_id: bool) -> Instance:
        instance = self.require(instance_id)
        return self.start_instance(instance.name, None if new_id else instance_id, instance.input)

    def purge(self, instance_id: str) -> bool:
        instance = self.instances.get(instance_id)
        if instance is None:
            return False
        if instance.status in RUNNING_STATES:
            raise DurableError(400, f"The instance '{instance_id}' is {instance.status}; terminate it before purging.")
        del self.instances[instance_id]
        self.persisted.pop(instance_id, None)
        with self.store.transaction():
            self.store.delete("instances", instance_id)
            for table in ("history", "pending", "activities"):
                self.store.delete_rows(table, instance_id)
        return True

    def require(self, instance_id: str) -> Instance:
        instance = self.instances.get(instance_id)
        if instance is None:
            raise DurableError(404, f"No instance with ID '{instance_id}' was found.")
        return instance

    def signal_entity(self, entity_id: str, operation: str, input_text: str | None) -> None:
        name = entity_id.split("@")[1]
        if name not in self.index.entities:
            raise DurableError(400, f"The function '{name}' doesn't exist, is disabled, or is not an entity function.")
        self.enqueue_entity(entity_id, {"name": operation, "input": input_text, "isSignal": True})
        self.save_entity(self.entities[entity_id])

    def enqueue_entity(self, entity_id: str, operation: dict[str, Any]) -> None:
        record = self.entities.setdefault(entity_id, EntityRecord(entity_id))
        record.queue.append(operation)
        # From an orchestration (its id is the operation's parent) or from a client (signal_entity).
        if self.queues.arrive(entity_id, operation.get("parent") or queuepolling.CLIENT):
            self.mark_ready(entity_id)

    async def wait_for_completion(self, instance_id: str, timeout: float) -> None:
        instance = self.instances.get(instance_id)
        if instance is None or instance.status in TERMINAL_STATES:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.completion_waiters.setdefault(instance_id, []).append(future)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(future, timeout)

    # -- episodes ---------------------------------------------------------------------------------------------

    def next_events(self, instance: Instance) -> list[dict[str, Any]]:
        """The next batch: plain events together, a retry-sensitive event alone (§2.4).

        They stay pending (and stored) until the episode that delivers them has been applied.
        """
        if instance.first_batch is not None:
            return instance.pending[: instance.first_batch]  # what arrived meanwhile waits for the next work item
        batch: list[dict[str, Any]] = []
        for candidate in instance.pending:
            sensitive = self.retry_record_for(instance, candidate) is not None
            if sensitive and batch:
                break
            batch.append(candidate)
            if sensitive:
                break
        return batch

    def retry_record_for(self, instance: Instance, new_event: dict[str, Any]) -> dict[str, Any] | None:
        kind = new_event["EventType"]
        for record in instance.retries.values():
            if kind in {TASK_FAILED, SUB_FAILED} and new_event.get("TaskScheduledId") == record["taskId"]:
                return record
            if kind == TIMER_FIRED and new_event.get("TimerId") == record.get("timerId"):
                return record
        return None

    def begin_episode(self, instance_id: str) -> None:
        """Send the instance's history and next events to a worker; `end_episode` applies the reply."""
        instance = self.instances.get(instance_id)
        if instance is None or instance.status in TERMINAL_STATES or instance.status == "Suspended":
            return
        if not instance.pending or instance_id in self.in_flight or instance_id in self.settling:
            return  # re-marked ready when the episode in flight ends or the client operation is done
        info = self.index.orchestrators.get(instance.name.lower())
        delivered = self.next_events(instance)
        started = event(ORCHESTRATOR_STARTED)
        instance.status = "Running"
        if info is None:
            error = f"The orchestrator function '{instance.name}' no longer exists in the app."
            self.apply_episode(instance, started, delivered, {}, error)
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
            held = self.session_at.pop(instance_id, None)
            if held is not None and held[0] == execution and held[1] <= len(instance.history):
                past = held[1]
            fields["session"] = {"instance": instance_id, "execution": execution, "past": past}
        first = 0 if self.session_mode == "verify" else past  # verify mode replays the whole history as well
        body = self.context_json(instance, [started, *delivered], context, first).encode()
        reply = self.workers.invoke(info, body, affinity=instance.id, **fields)
        self.in_flight.add(instance_id)
        replayed = len(instance.history) + 1 + len(delivered)
        reply.add_done_callback(
            lambda done: self.arrive(
                lambda: self.end_episode(instance_id, execution, started, delivered, done, replayed)
            )
        )

    def end_episode(
        self, instance_id: str, execution: str, started: dict[str, Any], delivered: list[dict[str, Any]],
        reply: asyncio.Future[Reply], replayed: int,
    ) -> None:  # fmt: skip
        self.in_flight.discard(instance_id)
        try:
            instance = self.instances.get(instance_id)
            if instance is None or instance.execution_id != execution or instance.status in TERMINAL_STATES:
                return  # nothing of that execution is left to apply the episode to
            error: str | None = None
            state: dict[str, Any] = {}
            kept = False
            try:
                header, body = reply.result()
                kept = bool(header.get("kept"))
                if header.get("miss"):
                    self.mark_ready(instance_id, first=True)  # the events are still pending: send everything
                    return
                # `json`, not orjson: the episode's output and custom status are the user's values as the SDK
                # wrote them, which may hold integers beyond 64 bits (orjson reads them as floats) or NaN.
                state = json.loads(body)
            except WorkerExited as exc:
                losses = self.worker_losses[instance_id] = self.worker_losses.get(instance_id, 0) + 1
                if losses < WORKER_LOSSES_TOLERATED:
                    return  # the events are still pending: the episode runs again
                error = f"{exc} ({losses} times in a row)"
            except FunctionFailed as exc:
                message = exc.message
                if OUT_OF_PROC_MARKER in message:
                    text, _, data = message.partition(OUT_OF_PROC_MARKER)
                    try:
                        state = json.loads(data)
                    except ValueError:
                        state = {}
                    error = state.get("error") or text
                else:
                    error = f"{exc.type}: {message}"
            self.worker_losses.pop(instance_id, None)
            self.apply_episode(instance, started, delivered, state, error)
            if kept and error is None and instance.status not in TERMINAL_STATES:
                self.session_at[instance_id] = (execution, replayed)  # where the worker's session now ends
        finally:
            self.after_episode(instance_id)

    def after_episode(self, instance_id: str) -> None:
        for waiter in self.settling.get(instance_id, []):
            if not waiter.done():
                waiter.set_result(None)
        instance = self.instances.get(instance_id)
        if instance is not None and instance.pending and instance.status == "Running":
            gather = self.gathers.get(instance_id)
            if gather is None or not gather.waits(len(instance.pending)):
                self.mark_ready(instance_id)

    def apply_episode(
        self, instance: Instance, started: dict[str, Any], delivered: list[dict[str, Any]], state: dict[str, Any],
        error: str | None,
    ) -> None:  # fmt: skip
        """Record what an episode did: its events, the actions it scheduled, and its end if it ended."""
        instance.take_pending(len(delivered))
        continued_first, instance.first_batch = instance.first_batch is not None, None
        past = len(instance.history)
        effects: list[Callable[[], None]] = []
        with self.store.transaction():
            new_history = [started, *delivered]
            scheduled: list[dict[str, Any]] = []
            for delivered_event in delivered:
                self.retry_bookkeeping(instance, delivered_event, scheduled, effects)
            top_actions = (state.get("actions") or [[]])[0] if state.get("actions") else []
            actions = flatten(top_actions)
            blocked: shim.Progress | None = None
            view: shim.Progress | None = None
            status_error = payloadlimits.custom_status_error(state.get("customStatus"))
            if status_error is not None:
                # The shim sets the custom status first and throws: nothing of the episode is scheduled.
                error = status_error
            elif state:
                # The shim replays the SDK's actions in order, awaiting each, even when the SDK reports a
                # failure; it takes the output or the failure only once it got through all of them.
                view = shim.progress(
                    top_actions, itertools.chain(instance.history, new_history), instance.action_ids,
                    self.retry_keys(instance), instance.entity_requests,
                )  # fmt: skip
                try:
                    self.schedule_actions(instance, actions, view.reached, scheduled, effects)
                    if view.blocked_at is not None and (error is not None or state.get("isDone")):
                        blocked = view
                    elif view.reached < len(actions):
                        self.report_blocked(instance, view)
                    elif error is None and state.get("isDone"):
                        error = end_payload_error(actions, state)
                except DurableError as exc:
                    error = str(exc)
                # Each work item's .NET context is new and the shim sets the custom status only when the SDK sent
                # one (the SDK leaves out falsy ones), so an episode without one stores null; except the first
                # episode of a continued generation, which keeps the status the last one had (DTFx carries it).
                reported = state.get("customStatus")
                if reported is not None or not continued_first:
                    instance.custom_status = reported
            instance.history.extend([*new_history, *scheduled, event(ORCHESTRATOR_COMPLETED)])
            if blocked is not None:
                self.report_blocked(instance, blocked)
                self.hold_for_all_of(instance, top_actions)
                self.save(instance)
            elif error is not None:
                instance.history.append(event(EXECUTION_COMPLETED, OrchestrationStatus=3, Result=error))
                self.finish(instance, "Failed", f"Orchestrator function '{instance.name}' failed: {error}", error)
            elif state.get("isDone"):
                if is_continue_as_new(actions):
                    # DTFx applied the events up to `view.applied` when the shim reached the continue-as-new; the
                    # external events after that point in this batch go to the next generation.
                    first_after = max(0, (view.applied if view else 0) - past - 1)  # - 1: OrchestratorStarted
                    carried = [item for item in delivered[first_after:] if item["EventType"] == EVENT_RAISED]
                    self.continue_as_new(instance, actions[-1].get("input"), carried)
                else:
                    output = state.get("output")
                    instance.history.append(
                        event(EXECUTION_COMPLETED, OrchestrationStatus=1, Result=json.dumps(output))
                    )
                    self.finish(instance, "Completed", output, None)
            else:
                self.hold_for_all_of(instance, top_actions)
                self.save(instance)
        for effect in effects:
            effect()

    def report_blocked(self, instance: Instance, view: shim.Progress) -> None:
        """The SDK went on, but the shim still awaits an earlier action, as it would in Azure: what follows it
        (and the orchestration's end) waits too."""
        log.warning(
            "orchestration %s: the Durable extension's shim still waits on its action #%s (%s), so in Azure the "
            "actions after it are not scheduled and the orchestration neither completes nor fails until it ends. "
            "Cancel timers you no longer wait for, and do not rely on an event the SDK handed to a second waiter "
            "(azure-functions-durable-python#507).",
            instance.id, view.blocked_at, view.waiting_for,
        )  # fmt: skip

    @staticmethod
    def retry_keys(instance: Instance) -> dict[int, shim.RetryKeys]:
        return {
            int(index): shim.RetryKeys(int(record["taskId"]), record.get("finalTimerId"))
            for index, record in instance.retries.items()
        }

    def hold_for_all_of(self, instance: Instance, top_actions: list[dict[str, Any]]) -> None:
        """Note the task_all the orchestrator is now blocked on, if results can be held for it (`fanin`)."""
        self.gathers.pop(instance.id, None)
        gather = fanin.blocked_on(top_actions, instance.action_ids, instance.history, instance.pending)
        if gather is not None:
            self.gathers[instance.id] = gather

    @contextlib.asynccontextmanager
    async def settled(self, instance_id: str) -> AsyncIterator[None]:
        """For a client operation that changes more than the pending queue (terminate, suspend, resume):
        wait until no episode of the instance is in flight, and start none until the operation is done."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters = self.settling.setdefault(instance_id, [])
        waiters.append(waiter)
        try:
            if instance_id in self.in_flight:
                await waiter
            yield
        finally:
            waiters.remove(waiter)
            if not waiters:
                del self.settling[instance_id]
                self.after_episode(instance_id)

    def context_json(
        self, instance: Instance, new_events: list[dict[str, Any]], fields: dict[str, Any], first: int = 0
    ) -> str:
        """The orchestration trigger's JSON: past events (IsPlayed) from `first` on + new ones, then the fields.

        Past events never change, so each is encoded once per execution (when it is stored) and kept.
        """
        played = self.played_events(instance)
        if len(played) < len(instance.history):  # not stored by this process yet (a restart): encode them now
            played.extend(played_text(encode(item)) for item in instance.history[len(played) :])
        history = ",".join([*played[first:], *(encode(item) for item in new_events)])
        return f'{{"history":[{history}],{encode(fields)[1:]}'

    def played_events(self, instance: Instance) -> list[str]:
        cached = self.played_json.get(instance.id)
        if cached is None or cached[0] != instance.execution_id or len(cached[1]) > len(instance.history):
            cached = self.played_json[instance.id] = (instance.execution_id, [])
        return cached[1]

    def remember_played(self, instance: Instance, first: int, texts: list[str]) -> None:
        """Keep the stored encoding of new history events for the next episode's context."""
        played = self.played_events(instance)
        if len(played) == first:
            played.extend(played_text(text) for text in texts)

    def allocate(self, instance: Instance) -> int:
        task_id = instance.next_id
        instance.next_id += 1
        return task_id

    def retry_bookkeeping(
        self, instance: Instance, new_event: dict[str, Any], scheduled: list[dict[str, Any]],
        effects: list[Callable[[], None]],
    ) -> None:  # fmt: skip
        record = self.retry_record_for(instance, new_event)
        if record is None:
            return
        if new_event["EventType"] in {TASK_FAILED, SUB_FAILED}:
            timer_id = self.allocate(instance)
            last = record["attempt"] >= record["max"]
            fire_at = time.time() + (0 if last else record["intervalMs"] / 1000)
            record["timerId"] = timer_id
            if last:
                record["finalTimerId"] = timer_id  # its firing ends the action (`devhost.shim`)
            scheduled.append(event(TIMER_CREATED, timer_id, FireAt=iso(fire_at)))
            instance.timers[str(timer_id)] = fire_at
            effects.append(lambda: self.schedule_timer(instance, timer_id, fire_at))
            return
        # TimerFired of a retry timer: the next attempt, unless that was the final (dummy) timer.
        record["timerId"] = None
        if record["attempt"] >= record["max"]:
            return
        record["attempt"] += 1
        task_id = self.allocate(instance)
        record["taskId"] = task_id
        self.schedule_work(instance, task_id, record["action"], scheduled, effects)

    def schedule_actions(
        self, instance: Instance, actions: list[dict[str, Any]], reach: int, scheduled: list[dict[str, Any]],
        effects: list[Callable[[], None]],
    ) -> None:  # fmt: skip
        """Schedule the flattened actions from the first new one up to `reach`, where the shim stops."""
        # Cancelled timers stay scheduled and still fire: DTFx schedules every timer the shim creates and only
        # its .NET task ends early, so the backend delivers TimerFired later (one more episode, ignored by the SDK).
        for index in range(instance.seen, reach):
            action = actions[index]
            kind = action.get("actionType")
            if kind in {ActionType.CONTINUE_AS_NEW, ActionType.WAIT_FOR_EXTERNAL_EVENT}:
                instance.action_ids.append(None)
                continue
            task_id = self.allocate(instance)
            instance.action_ids.append(task_id)
            if kind in {ActionType.CALL_ACTIVITY_WITH_RETRY, ActionType.CALL_SUB_ORCHESTRATOR_WITH_RETRY}:
                options = action.get("retryOptions") or {}
                instance.retries[str(index)] = {
                    "action": action, "taskId": task_id, "attempt": 1, "timerId": None,
                    "max": int(options.get("maxNumberOfAttempts", 1)),
                    "intervalMs": float(options.get("firstRetryIntervalInMilliseconds", 0)),
                }  # fmt: skip
            self.schedule_work(instance, task_id, action, scheduled, effects)
        instance.seen = max(instance.seen, reach)

    def schedule_work(
        self, instance: Instance, task_id: int, action: dict[str, Any], scheduled: list[dict[str, Any]],
        effects: list[Callable[[], None]],
    ) -> None:  # fmt: skip
        kind = action.get("actionType")
        problem = payloadlimits.payload_error(
            f"input of the {describe_action(action)}", payload_text(action.get("input"))
        )
        if problem is not None:
            raise DurableError(400, problem)
        if kind in {ActionType.CALL_ACTIVITY, ActionType.CALL_ACTIVITY_WITH_RETRY}:
            name = str(action["functionName"])
            if name.lower() not in self.index.activities:
                known = ", ".join(sorted(f.name for f in self.index.activities.values()))
                raise DurableError(
                    400, f"The function '{name}' doesn't exist, is disabled, or is not an activity function. "
                    f"Additional info: The following are the known activity functions: '{known}'.",
                )  # fmt: skip
            scheduled.append(event(TASK_SCHEDULED, task_id, Name=name, Version="", Input=action.get("input")))
            work = {"name": name, "input": action.get("input"), "execution": instance.execution_id}
            self.set_activity(instance, str(task_id), work)
            effects.append(lambda: self.run_activity(instance, task_id, work))
        elif kind in {ActionType.CALL_SUB_ORCHESTRATOR, ActionType.CALL_SUB_ORCHESTRATOR_WITH_RETRY}:
            name = str(action["functionName"])
            self.orchestrator(name)
            child_id = action.get("instanceId") or f"{instance.execution_id}:{task_id}"
            scheduled.append(event(SUB_CREATED, task_id, Name=name, InstanceId=child_id, Input=action.get("input"),
                                   Version=action.get("version")))  # fmt: skip
            instance.children[str(task_id)] = {"id": child_id, "name": name, "input": action.get("input")}
            parent = {"id": instance.id, "taskId": task_id, "execution": instance.execution_id}
            self.start_child(name, child_id, action.get("input"), parent)
        elif kind == ActionType.CREATE_TIMER:
            fire_at = parse_iso(str(action["fireAt"]))
            scheduled.append(event(TIMER_CREATED, task_id, FireAt=action["fireAt"]))
            instance.timers[str(task_id)] = fire_at  # even when created cancelled: see schedule_actions
            effects.append(lambda: self.schedule_timer(instance, task_id, fire_at))
        elif kind in {ActionType.CALL_ENTITY, ActionType.SIGNAL_ENTITY}:
            entity_id = str(action["instanceId"])
            name = entity_id.split("@")[1] if entity_id.count("@") >= 2 else ""
            if name not in self.index.entities:
                raise DurableError(
                    400, f"The function '{name}' doesn't exist, is disabled, or is not an entity function."
                )
            request_id = str(uuid.uuid4())
            message: dict[str, Any] = {"op": action["operation"], "input": action.get("input"), "id": request_id,
                                       "parent": instance.id, "parentExecution": instance.execution_id}  # fmt: skip
            if kind == ActionType.SIGNAL_ENTITY:
                message["signal"] = True
            else:
                instance.entity_requests[str(task_id)] = request_id
            scheduled.append(event(EVENT_SENT, task_id, InstanceId=entity_id, Name=action["operation"],
                                   Input=json.dumps(message)))  # fmt: skip
            raw_input = action.get("input")
            self.enqueue_entity(entity_id, {
                "name": action["operation"], "input": None if raw_input is None else json.dumps(raw_input),
                "isSignal": kind == ActionType.SIGNAL_ENTITY, "id": request_id, "parent": instance.id,
                "parentExecution": instance.execution_id,
            })  # fmt: skip
            self.save_entity_soon(self.entities[entity_id])
        elif kind == ActionType.CALL_HTTP:
            scheduled.append(event(TASK_SCHEDULED, task_id, Name="BuiltIn::HttpActivity", Version=""))
            work = {
                "name": "BuiltIn::HttpActivity",
                "http": action.get("httpRequest"),
                "execution": instance.execution_id,
            }
            self.set_activity(instance, str(task_id), work)
            effects.append(lambda: self.run_activity(instance, task_id, work))
        else:
            raise DurableError(400, f"unsupported action type {kind}")

    def start_child(self, name: str, child_id: str, input_text: Any, parent: dict[str, Any]) -> None:
        existing = self.instances.get(child_id)
        if existing is not None and existing.status in RUNNING_STATES:
            return  # recreated after a restart: already there
        self.start_instance(name, child_id, input_text, parent)

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
        self.gathers.pop(instance.id, None)
        instance.status = "Running"  # Azure Storage writes the new generation at once: no ContinuedAsNew is seen
        instance.input = input_text
        instance.execution_id = uuid.uuid4().hex
        instance.created = time.time()  # the status's createdTime is the new ExecutionStarted's time
        instance.history = []
        instance.next_id = instance.seen = 0
        instance.action_ids, instance.retries, instance.entity_requests = [], {}, {}
        instance.activities, instance.children = {}, {}
        self.drop_timers(instance)
        instance.pending.extend([execution_started(instance), *carried, *arrived])
        instance.first_batch = 1 + len(carried)
        self.save(instance)
        self.mark_ready(instance.id)

    def drop_timers(self, instance: Instance) -> None:
        for timer_id in list(instance.timers):
            handle = self.timer_handles.pop((instance.id, timer_id), None)
            if handle is not None:
                handle.cancel()
        instance.timers = {}

    def finish(self, instance: Instance, status: str, output: Any, error: str | None) -> None:
        instance.status = status
        instance.output = output
        self.played_json.pop(instance.id, None)
        self.gathers.pop(instance.id, None)
        self.worker_losses.pop(instance.id, None)
        self.session_at.pop(instance.id, None)  # a worker may keep it (a terminated one) until it is evicted
        instance.take_pending()
        instance.held = []
        for task in list(instance.activities):
            self.set_activity(instance, task, None)
        instance.children = {}
        self.drop_timers(instance)
        self.save(instance)
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
        for waiter in self.completion_waiters.pop(instance.id, []):
            if not waiter.done():
                waiter.set_result(None)

    # -- activities and timers --------------------------------------------------------------------------------

    def run_activity(self, instance: Instance, task_id: int, work: dict[str, Any]) -> None:
        loop = asyncio.get_running_loop()

        async def run() -> None:
            failed: tuple[str, str, str] | None = None  # type, message, details
            try:
                if work["name"] == "BuiltIn::HttpActivity":
                    result_text = json.dumps(await self.http_call(work["http"]))
                else:
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
            self.arrive(lambda: self.activity_done(instance.id, task_id, work["execution"], outcome))

        task = loop.create_task(run())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def arrive(self, arrival: Callable[[], None]) -> None:
        self.arrivals.append(arrival)
        self.wakeup.set()

    def activity_done(self, instance_id: str, task_id: int, execution: str, outcome: dict[str, Any]) -> None:
        current = self.instances.get(instance_id)
        if current is None or current.execution_id != execution:
            return
        self.set_activity(current, str(task_id), None)
        self.deliver(current.id, outcome, execution)

    def timer_fired(self, instance_id: str, timer_id: int, execution: str, fire_at: float) -> None:
        current = self.instances.get(instance_id)
        if current is None or current.execution_id != execution or str(timer_id) not in current.timers:
            return
        current.timers.pop(str(timer_id), None)
        self.deliver(current.id, event(TIMER_FIRED, TimerId=timer_id, FireAt=iso(fire_at)), execution)

    def schedule_timer(self, instance: Instance, timer_id: int, fire_at: float) -> None:
        loop = asyncio.get_running_loop()
        execution = instance.execution_id

        def fire() -> None:
            self.timer_handles.pop((instance.id, str(timer_id)), None)
            self.arrive(lambda: self.timer_fired(instance.id, timer_id, execution, fire_at))

        delay = max(0.0, fire_at - time.time())
        self.timer_handles[(instance.id, str(timer_id))] = loop.call_later(delay, fire)

    # -- entities ---------------------------------------------------------------------------------------------

    def begin_entity_batch(self, entity_id: str) -> None:
        """Send the entity's state and next operations to a worker; `end_entity_batch` applies the reply."""
        record = self.entities.get(entity_id)
        if record is None or not record.queue or entity_id in self.in_flight:
            return  # re-marked ready when the batch in flight ends
        info = self.index.entities.get(record.name)
        batch = record.queue[:ENTITY_BATCH]
        if info is None:
            failure = {"isError": True, "result": json.dumps(f"the entity function '{record.name}' does not exist")}
            self.apply_entity_batch(record, batch, [failure] * len(batch))
            return
        context = {
            "self": {"name": record.name, "key": record.key},
            "exists": record.exists,
            "state": record.state,
            "batch": [{"name": op["name"], "input": op.get("input"), "isSignal": op.get("isSignal", False)}
                      for op in batch],
        }  # fmt: skip
        reply = self.workers.invoke(info, fastjson.dumps(context), affinity=entity_id)
        self.in_flight.add(entity_id)
        reply.add_done_callback(lambda done: self.arrive(lambda: self.end_entity_batch(entity_id, batch, done)))

    def end_entity_batch(self, entity_id: str, batch: list[dict[str, Any]], reply: asyncio.Future[Reply]) -> None:
        self.in_flight.discard(entity_id)
        record = self.entities[entity_id]
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
            self.mark_ready(entity_id, first=True)  # the operations are still queued: run them again
            return
        except Exception as exc:
            results = [{"isError": True, "result": json.dumps(str(exc))} for _ in batch]
        self.apply_entity_batch(record, batch, results)

    def apply_entity_batch(
        self, record: EntityRecord, batch: list[dict[str, Any]], results: list[dict[str, Any]]
    ) -> None:
        with self.store.transaction():
            record.queue = record.queue[len(batch) :]
            self.save_entity_soon(record)
            for op, result in zip(batch, results + [{}] * (len(batch) - len(results)), strict=False):
                if op.get("isSignal") or not op.get("parent"):
                    continue
                response: dict[str, Any] = {
                    "result": result.get("result") if result.get("result") is not None else "null"
                }
                if result.get("isError"):
                    response["exceptionType"] = "Error"
                self.deliver(op["parent"], event(EVENT_RAISED, Name=op["id"], Input=json.dumps(response)),
                             op.get("parentExecution"), sender=record.id)  # fmt: skip
        if record.queue:
            # Straight back to the front: callers wait on these answers, and an entity behind every busy
            # orchestration would take a full round of the ready queue per ENTITY_BATCH operations.
            self.mark_ready(record.id, first=True)

    def entity_state(self, entity_id: str) -> Any:
        record = self.entities.get(entity_id)
        if record is None or not record.exists or record.state is None:
            return None, False
        return df_loads(record.state), True
