"""What devhost stores about orchestrations and entities: the instance and entity records and their helpers."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from devhost.durable.vocabulary import (
    EXECUTION_STARTED,
    SUB_COMPLETED,
    SUB_CREATED,
    SUB_FAILED,
    event,
)

ROW_FIELDS = frozenset({"history", "pending", "activities"})  # stored as rows, not in the instance's document
# Kept in memory only, never in the instance's document. The outstanding children are read off the stored events
# at load (`outstanding_children`, the only exact source after a restart), and with their inputs they made most of
# a fan-out parent's document, rewritten by each of its episodes: a 10,000-task job's grew to megabytes.
MEMORY_FIELDS = frozenset({"history_in_store", "children"})
# The input has a row of its own (`inputs`), written once per execution: it never changes, and a fan-out
# parent's (a job's whole task list) made its document large enough that each episode's rewrite of it cost more
# than the episode.
INPUT_FIELD = "input"


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
    # A finished instance's history lives only in the store (`Engine.finish` lets go of it): nothing runs on it
    # any more, and a 10,000-task job would otherwise hold every task's whole history in the host's memory.
    # The Durable API's `showHistory` reads it back (`Persistence.history`).
    history_in_store: bool = False

    def meta(self) -> dict[str, Any]:
        """Everything but the row-stored parts (history, pending events, outstanding activities)."""
        return {
            k: v
            for k, v in self.__dict__.items()
            if k not in ROW_FIELDS and k not in MEMORY_FIELDS and k != INPUT_FIELD
        }

    def let_go_of_history(self) -> None:
        """Drop a finished execution's history from memory (it is stored); `history` reads as empty after. The
        bookkeeping only its episodes used goes too (a late event for it is dropped before it is looked at)."""
        self.history = []
        self.history_in_store = True
        self.action_ids, self.retries, self.entity_requests = [], {}, {}

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

    def new_execution(self, input_value: Any, execution_id: str, created: float) -> None:
        """Start the next generation of this instance (continue-as-new): every per-execution field afresh."""
        self.status = "Running"  # Azure Storage writes the new generation at once: no ContinuedAsNew is seen
        self.input = input_value
        self.execution_id = execution_id
        self.created = created  # the status's createdTime is the new ExecutionStarted's time
        self.history, self.history_in_store = [], False
        self.next_id = self.seen = 0
        self.action_ids, self.retries, self.entity_requests = [], {}, {}
        self.activities, self.children, self.timers = {}, {}, {}


# An entity's queued operations are rows (`entity_ops`), not part of its document: a capacity entity that 10,000
# tasks call at once would otherwise rewrite every queued operation with each batch it runs. The other two say
# which rows are stored (memory only).
ENTITY_UNSTORED = frozenset({"queue", "rows_from", "rows_upto"})


@dataclass
class EntityRecord:
    id: str  # "@name@key"
    exists: bool = False
    state: str | None = None
    queue: list[dict[str, Any]] = field(default_factory=list)
    updated: float = field(default_factory=time.time)
    consumed: int = 0  # operations ever taken off the queue's front: the next one's row number
    rows_from: int = 0  # rows below this are deleted
    rows_upto: int = 0  # rows below this are stored

    def take(self, count: int) -> None:
        """Remove `count` operations from the front of the queue (they have run)."""
        self.queue = self.queue[count:]
        self.consumed += count

    @property
    def name(self) -> str:
        return self.id.split("@")[1]

    @property
    def key(self) -> str:
        return self.id.split("@", 2)[2]

    def to_dict(self) -> dict[str, Any]:
        """The entity's document (its queue is stored as rows)."""
        return {k: v for k, v in self.__dict__.items() if k not in ENTITY_UNSTORED}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EntityRecord:
        return cls(**data)


def entity_name(entity_id: str) -> str:
    """The entity function's name in an `@name@key` id ("" when the id has no such shape)."""
    return entity_id.split("@")[1] if entity_id.count("@") >= 2 else ""


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
