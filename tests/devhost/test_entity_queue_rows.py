"""An entity's queued operations are rows of the store, not part of its document.

When 10,000 tasks call the capacity entity at once, its queue holds thousands of operations; written inside the
entity's document, every save (each batch of steps that touched it) rewrote all of them, a cost that grew with
the square of the job. As rows, a save writes the operations that arrived and deletes the ones that ran. Real
SQLite store, real `Persistence`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from devhost.durable.persistence import Persistence
from devhost.durable.records import EntityRecord
from devhost.durable.runtime import InstanceRuntime
from devhost.store import Store


def persistence(path: Path) -> tuple[Persistence, Store]:
    store = Store(path)
    runtimes: dict[str, InstanceRuntime] = {}
    return Persistence(store, lambda key: runtimes.setdefault(key, InstanceRuntime())), store


def operation(n: int) -> dict[str, Any]:
    return {"name": "acquire", "input": json.dumps({"lease": n}), "isSignal": False, "id": f"request-{n}"}


def stored_rows(store: Store, entity_id: str) -> list[int]:
    query = "SELECT seq FROM entity_ops WHERE instance = ? ORDER BY seq"
    return [seq for (seq,) in store.connection.execute(query, (entity_id,))]


def document(store: Store, entity_id: str) -> dict[str, Any]:
    (text,) = store.connection.execute("SELECT data FROM entities WHERE id = ?", (entity_id,)).fetchone()
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def test_a_save_writes_new_operations_and_deletes_those_that_ran(tmp_path: Path) -> None:
    saver, store = persistence(tmp_path / "hub.sqlite")
    record = EntityRecord("@capacity@region", queue=[operation(n) for n in range(3)])
    saver.save_entity(record)
    assert stored_rows(store, record.id) == [0, 1, 2]
    assert "queue" not in document(store, record.id) and document(store, record.id)["consumed"] == 0

    record.take(2)  # a batch of two ran
    record.queue.append(operation(3))
    saver.save_entity(record)
    assert stored_rows(store, record.id) == [2, 3]
    assert document(store, record.id)["consumed"] == 2

    saver.save_entity(record)  # nothing changed: the rows stay as they are
    assert stored_rows(store, record.id) == [2, 3]
    store.close()

    reloaded, store = persistence(tmp_path / "hub.sqlite")
    (loaded,) = reloaded.load()[1]
    assert loaded.queue == [operation(2), operation(3)] and loaded.consumed == 2
    loaded.take(1)
    loaded.queue.append(operation(4))
    reloaded.save_entity(loaded)  # after a reload, rows are numbered on from where they were
    assert stored_rows(store, loaded.id) == [3, 4]
    store.close()


def test_a_document_stored_with_its_queue_inside_keeps_it(tmp_path: Path) -> None:
    """A data folder from before the rows: the queue is read from the document and moved to rows on its save."""
    store = Store(tmp_path / "hub.sqlite")
    old = {"id": "@tenant@t1", "exists": True, "state": '{"n": 1}', "queue": [operation(7)], "updated": 1.0}
    store.put("entities", "@tenant@t1", old)
    store.close()
    saver, store = persistence(tmp_path / "hub.sqlite")
    (record,) = saver.load()[1]
    assert record.queue == [operation(7)] and record.state == '{"n": 1}'
    saver.save_entity(record)
    assert stored_rows(store, record.id) == [0] and "queue" not in document(store, record.id)
    store.close()
    again, store = persistence(tmp_path / "hub.sqlite")
    assert again.load()[1][0].queue == [operation(7)]
    store.close()
