"""Instances and entities in the SQLite store (`devhost.store`): load them all at start, save what changed.

An instance's history, pending events and outstanding activities are rows, written as they grow, so a save
writes only what changed since the last one (`runtime.Persisted` says what is already there); the rest of the
record is one document.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from devhost import shim
from devhost.durable.records import EntityRecord, Instance, outstanding_children, played_text
from devhost.durable.runtime import InstanceRuntime, Persisted
from devhost.store import Store
from localtools.fastjson import dumps_text as encode

ROW_TABLES = ("history", "pending", "activities")


class Persistence:
    def __init__(self, store: Store, runtime: Callable[[str], InstanceRuntime]) -> None:
        self.store = store
        self.runtime = runtime  # the instance's in-memory state, made on first use

    def load(self) -> tuple[list[Instance], list[EntityRecord]]:
        """Every stored instance (with what its rows say) and entity, noting what of each is stored."""
        history, pending, activities = (self.store.rows(t) for t in ROW_TABLES)
        instances = []
        for data in self.store.load_all("instances"):
            instance = Instance.from_dict(data)
            instance.history = [item for _, item in history.get(instance.id, [])]
            instance.pending = [item for seq, item in pending.get(instance.id, []) if seq >= instance.pending_consumed]
            instance.activities = {str(task): work for task, work in activities.get(instance.id, [])}
            instance.children = outstanding_children(instance)
            if not instance.entity_requests:  # stored before devhost kept them: read them off the events once
                instance.entity_requests = shim.entity_requests(instance.history)
            self.runtime(instance.id).persisted = Persisted(
                instance.execution_id,
                len(instance.history),
                instance.pending_consumed + len(instance.pending),
                0,  # rows of consumed events may survive a crash: the first save deletes them
                set(instance.activities),
            )
            instances.append(instance)
        entities = [EntityRecord.from_dict(data) for data in self.store.load_all("entities")]
        return instances, entities

    def save(self, instance: Instance, meta: bool = True) -> None:
        """Write what changed since the last save: new history, the pending queue's ends, activity rows."""
        instance.updated = time.time()
        runtime = self.runtime(instance.id)
        done = runtime.persisted
        with self.store.transaction():
            if done.execution != instance.execution_id or done.history > len(instance.history):
                # A new execution (start over a finished id, continue-as-new): its rows start afresh.
                for table in ROW_TABLES:
                    self.store.delete_rows(table, instance.id)
                done = runtime.persisted = Persisted(
                    instance.execution_id, 0, instance.pending_consumed, instance.pending_consumed,
                    changed_activities=done.changed_activities,  # every outstanding one is new to this execution
                )  # fmt: skip
            if len(instance.history) > done.history:
                texts = [encode(item) for item in instance.history[done.history :]]
                self.store.append_encoded("history", instance.id, done.history, texts)
                played = runtime.played_for(instance.execution_id, len(instance.history))
                if len(played) == done.history:  # keep the encoding for the next episode's context
                    played.extend(played_text(text) for text in texts)
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

    def note_activity(self, instance_id: str, task: str) -> None:
        """An activity was scheduled or ended: the next save writes (or deletes) just that row."""
        self.runtime(instance_id).persisted.changed_activities.add(task)

    def delete(self, instance_id: str) -> None:
        with self.store.transaction():
            self.store.delete("instances", instance_id)
            for table in ROW_TABLES:
                self.store.delete_rows(table, instance_id)

    def save_entity(self, record: EntityRecord) -> None:
        record.updated = time.time()
        self.store.put("entities", record.id, record.to_dict())
