"""What an instance's document holds: neither its input (a row of its own, written once per execution) nor its
outstanding children (read off the stored events at load).

A job orchestration's input is its whole task list and its children carry their own inputs; both went into the
document each of its episodes rewrote, so a 10,000-task job spent more on rewriting them than on its episodes.
Real SQLite store, real `Persistence`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from devhost.durable.persistence import Persistence, StoreInconsistent
from devhost.durable.records import Instance, execution_started
from devhost.durable.runtime import InstanceRuntime
from devhost.durable.vocabulary import SUB_CREATED, event
from devhost.store import Store

BIG_INPUT = {"tasks": [{"index": n, "command": ["bash", "-c", "sleep 1"]} for n in range(200)]}


def persistence(path: Path) -> tuple[Persistence, Store]:
    store = Store(path)
    runtimes: dict[str, InstanceRuntime] = {}
    return Persistence(store, lambda key: runtimes.setdefault(key, InstanceRuntime())), store


def document(store: Store, instance_id: str) -> dict[str, Any]:
    (text,) = store.connection.execute("SELECT data FROM instances WHERE id = ?", (instance_id,)).fetchone()
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def input_row(store: Store, instance_id: str) -> dict[str, Any]:
    (text,) = store.connection.execute("SELECT data FROM inputs WHERE id = ?", (instance_id,)).fetchone()
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def running_parent() -> Instance:
    instance = Instance(id="job:t:j", name="job", input=BIG_INPUT, status="Running")
    instance.history = [execution_started(instance)]
    created = event(SUB_CREATED, 0, Name="chunk", InstanceId="chunk:t:j:0", Input=json.dumps({"first": 0}))
    instance.history.append(created)
    instance.children = {"0": {"id": "chunk:t:j:0", "name": "chunk", "input": created["Input"]}}
    return instance


def test_the_input_is_written_once_per_execution_and_children_never(tmp_path: Path) -> None:
    saver, store = persistence(tmp_path / "hub.sqlite")
    instance = running_parent()
    saver.save(instance)
    stored = document(store, instance.id)
    assert "input" not in stored and "children" not in stored
    assert input_row(store, instance.id) == {"id": instance.id, "execution": instance.execution_id, "input": BIG_INPUT}

    store.connection.execute("DELETE FROM inputs")  # a second save of the same execution does not write it again
    instance.custom_status = {"phase": "running"}
    saver.save(instance)
    assert store.connection.execute("SELECT COUNT(*) FROM inputs").fetchone() == (0,)

    instance.new_execution({"generation": 2}, "second-execution", 2.0)  # continue-as-new: a new input row
    saver.save(instance)
    assert input_row(store, instance.id)["input"] == {"generation": 2}
    assert input_row(store, instance.id)["execution"] == "second-execution"
    store.close()


def test_a_reload_reads_the_input_row_and_the_children_off_the_events(tmp_path: Path) -> None:
    saver, store = persistence(tmp_path / "hub.sqlite")
    instance = running_parent()
    saver.save(instance)
    store.close()
    reloaded, store = persistence(tmp_path / "hub.sqlite")
    (loaded,) = reloaded.load()[0]
    assert loaded.input == BIG_INPUT
    assert loaded.children == {"0": {"id": "chunk:t:j:0", "name": "chunk", "input": json.dumps({"first": 0})}}
    store.close()


def test_a_document_stored_with_its_input_inside_gets_its_row_at_load(tmp_path: Path) -> None:
    """A data folder from before the input rows: the input is read from the document and given its row."""
    store = Store(tmp_path / "hub.sqlite")
    old = Instance(id="old", name="job", input={"n": 1}, status="Completed", output=[1])
    store.put("instances", old.id, {**old.meta(), "input": old.input}, user_values=True)
    store.close()
    saver, store = persistence(tmp_path / "hub.sqlite")
    (loaded,) = saver.load()[0]
    assert loaded.input == {"n": 1} and loaded.output == [1]
    assert input_row(store, "old")["input"] == {"n": 1}
    saver.save(loaded)  # its document loses the input; the row keeps it
    store.close()
    again, store = persistence(tmp_path / "hub.sqlite")
    assert again.load()[0][0].input == {"n": 1}
    store.close()


def test_an_input_row_of_another_execution_stops_the_load_naming_both(tmp_path: Path) -> None:
    saver, store = persistence(tmp_path / "hub.sqlite")
    instance = running_parent()
    saver.save(instance)
    first = instance.execution_id
    instance.new_execution({"generation": 2}, "second-execution", 2.0)
    saver.save(instance)
    # The document says the second execution; the input row goes back to the first one's.
    stale = {"id": instance.id, "execution": first, "input": BIG_INPUT}
    store.connection.execute("UPDATE inputs SET data = ? WHERE id = ?", (json.dumps(stale), instance.id))
    store.close()
    reloaded, store = persistence(tmp_path / "hub.sqlite")
    with pytest.raises(StoreInconsistent) as refused:
        reloaded.load()
    assert (
        instance.id in str(refused.value) and first in str(refused.value) and "second-execution" in str(refused.value)
    )
    store.close()
