"""Instances and entities in the SQLite store (`devhost.store`): load them all at start, save what changed.

An instance's history, pending events and outstanding activities are rows, written as they grow, so a save
writes only what changed since the last one (`runtime.Persisted` says what is already there); the rest of the
record is one document.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from devhost import shim
from devhost.durable.records import EntityRecord, Instance, outstanding_children, played_text
from devhost.durable.runtime import InstanceRuntime, Persisted
from devhost.durable.vocabulary import TERMINAL_STATES
from devhost.store import Store
from localtools.fastjson import dumps_text as encode

ROW_TABLES = ("history", "pending", "activities")


class StoreInconsistent(RuntimeError):
    """What the store holds contradicts itself; devhost will not guess which part is right."""


def check_input_row(instance: Instance, row: dict[str, Any]) -> None:
    """An input row is written with its execution's document, in one transaction: one naming another execution
    would give this one another generation's input, so loading stops instead."""
    if row.get("execution") != instance.execution_id:
        raise StoreInconsistent(
            f"the stored input of instance {instance.id!r} belongs to execution {row.get('execution')!r}, but the "
            f"instance's document is of execution {instance.execution_id!r}; devhost will not run it with another "
            "execution's input. The data folder was changed outside this devhost (or by a newer one): purge the "
            "instance with a devhost that reads it, or start on a fresh --data"
        )


class Persistence:
    def __init__(self, store: Store, runtime: Callable[[str], InstanceRuntime]) -> None:
        self.store = store
        self.runtime = runtime  # the instance's in-memory state, made on first use
        self.keep_played = True  # keep each stored event's replay encoding for the next episode (`Engine`)

    def load(self) -> tuple[list[Instance], list[EntityRecord]]:
        """Every stored instance (with what its rows say) and entity, noting what of each is stored."""
        history, pending, activities = (self.store.rows(t) for t in ROW_TABLES)
        inputs = {row["id"]: row for row in self.store.load_all("inputs")}
        instances = []
        unstored: list[Instance] = []
        for data in self.store.load_all("instances"):
            instance = Instance.from_dict({"input": None, **data})
            stored_input = inputs.get(instance.id)
            if stored_input is not None:
                check_input_row(instance, stored_input)
                instance.input = stored_input["input"]
            else:  # a document stored before inputs had their own rows holds it itself
                unstored.append(instance)
            if instance.status in TERMINAL_STATES:
                # Nothing runs on a finished instance: its history stays in the store (`Instance.history_in_store`).
                instance.let_go_of_history()
                instances.append(instance)
                continue
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
                input_of=instance.execution_id,
            )
            instances.append(instance)
        if unstored:
            with self.store.transaction():
                for instance in unstored:
                    self.save_input(instance)
        operations = self.store.rows("entity_ops")
        entities = []
        for data in self.store.load_all("entities"):
            record = EntityRecord.from_dict(data)  # a document stored before the rows holds its queue itself
            rows = operations.get(record.id)
            if rows is not None:
                record.queue = [op for seq, op in rows if seq >= record.consumed]
                record.rows_upto = record.consumed + len(record.queue)
            record.rows_from = record.consumed
            entities.append(record)
        return instances, entities

    def save(self, instance: Instance, meta: bool = True) -> None:
        """Write what changed since the last save: new history, the pending queue's ends, activity rows."""
        instance.updated = time.time()
        if instance.history_in_store:
            # Finished, and its rows were final when it let go of its history: only its document can change.
            if meta:
                self.store.put("instances", instance.id, instance.meta(), user_values=True)
            return
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
                    input_of=done.input_of,
                )  # fmt: skip
            if done.input_of != instance.execution_id:
                self.save_input(instance)
                done.input_of = instance.execution_id
            if len(instance.history) > done.history:
                texts = [encode(item) for item in instance.history[done.history :]]
                self.store.append_encoded("history", instance.id, done.history, texts)
                played = runtime.played_for(instance.execution_id, len(instance.history))
                if self.keep_played and len(played) == done.history:  # kept for the next episode's context
                    played.extend(played_text(text) for text in texts)
                done.history = len(instance.history)
            done.pending_from, done.pending_upto = self.save_queue(
                "pending", instance.id, instance.pending, instance.pending_consumed, done.pending_from,
                done.pending_upto,
            )  # fmt: skip
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

    def save_input(self, instance: Instance) -> None:
        """The execution's input, in its own row (the user's value: stored as `json` writes it)."""
        row = {"id": instance.id, "execution": instance.execution_id, "input": instance.input}
        self.store.put("inputs", instance.id, row, user_values=True)

    def history(self, instance: Instance) -> list[dict[str, Any]]:
        """The instance's history: in memory while it runs, read from the store once it has finished."""
        return self.store.rows_of("history", instance.id) if instance.history_in_store else instance.history

    def played_from(self, instance: Instance, first: int) -> list[str]:
        """The stored past events from `first` on, encoded as replay sees them (`records.played_text`).

        Past events never change: while sessions are off each is encoded once per execution, when stored, and kept.
        With sessions on, a worker holds them and only a session miss needs them: encoded now, not kept.
        """
        if first >= len(instance.history):
            return []
        if not self.keep_played:
            return [played_text(encode(item)) for item in instance.history[first:]]
        played = self.runtime(instance.id).played_for(instance.execution_id, len(instance.history))
        if len(played) < len(instance.history):  # not stored by this process yet (a restart): encode them now
            played.extend(played_text(encode(item)) for item in instance.history[len(played) :])
        return played[first:]

    def note_activity(self, instance_id: str, task: str) -> None:
        """An activity was scheduled or ended: the next save writes (or deletes) just that row."""
        self.runtime(instance_id).persisted.changed_activities.add(task)

    def delete(self, instance_id: str) -> None:
        with self.store.transaction():
            self.store.delete("instances", instance_id)
            self.store.delete("inputs", instance_id)
            for table in ROW_TABLES:
                self.store.delete_rows(table, instance_id)

    def save_entity(self, record: EntityRecord) -> None:
        """Write the entity's document and what changed of its queue: new operations, the ones that have run."""
        record.updated = time.time()
        with self.store.transaction():
            record.rows_from, record.rows_upto = self.save_queue(
                "entity_ops", record.id, record.queue, record.consumed, record.rows_from, record.rows_upto
            )
            self.store.put("entities", record.id, record.to_dict())

    def save_queue(
        self, table: str, key: str, items: list[dict[str, Any]], consumed: int, rows_from: int, rows_upto: int
    ) -> tuple[int, int]:
        """A queue stored as rows numbered from its first item ever (`consumed` have been taken off its front; rows
        from `rows_from` to `rows_upto` are stored): delete the rows of items taken, append the new ones. Returns
        the two bounds as they now are."""
        if rows_from < consumed:
            self.store.delete_rows(table, key, below=consumed)
            rows_from = consumed
        end = consumed + len(items)
        start = max(rows_upto, consumed)
        if end > start:
            self.store.append_rows(table, key, start, items[start - consumed :])
        return rows_from, end
