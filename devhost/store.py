"""SQLite (WAL) persistence for devhost: a JSON document per orchestration instance and per entity, plus rows for
what grows or is written once (an instance's history, pending events, activities and input; an entity's queue).

Every state change is written before its effects are started (a scheduled activity is stored before it
runs), so killing the process at any moment and starting again resumes every instance: unfinished
activities run again (at-least-once, as in Azure), timers fire (late ones at once), queued entity
operations and raised events are kept. Several rows changed by one step are written in one transaction, and
the engine runs a batch of steps in one outer transaction (group commit): the effects of a step (an activity
started, a timer set) only start once the loop regains control, which is after that commit.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from localtools.fastjson import dumps_exact as encode_exact
from localtools.fastjson import dumps_text as encode

SCHEMA = """
CREATE TABLE IF NOT EXISTS instances (id TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entities (id TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS inputs (id TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS history (instance TEXT, position INTEGER, event TEXT, PRIMARY KEY (instance, position));
CREATE TABLE IF NOT EXISTS pending (instance TEXT, seq INTEGER, event TEXT, PRIMARY KEY (instance, seq));
CREATE TABLE IF NOT EXISTS activities (instance TEXT, task INTEGER, work TEXT, PRIMARY KEY (instance, task));
CREATE TABLE IF NOT EXISTS entity_ops (instance TEXT, seq INTEGER, op TEXT, PRIMARY KEY (instance, seq));
"""
# `entity_ops`: an entity's queued operations (`instance` is the entity's id), like an instance's pending events.
_COLUMNS = {"history": "position, event", "pending": "seq, event", "activities": "task, work", "entity_ops": "seq, op"}
_INSERT_ROW = {
    table: f"INSERT OR REPLACE INTO {table} (instance, {columns}) VALUES (?, ?, ?)"
    for table, columns in _COLUMNS.items()
}
# An instance is stored as a small metadata document plus append-only rows (history, pending events,
# outstanding activities), so a step writes what changed, not the whole history: a fan-out of n activities
# then costs O(n) writes in all instead of O(n^2).


class Store:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.connection.execute("PRAGMA journal_mode=WAL")
        # NORMAL is durable against process crashes in WAL mode (only a power loss can drop the last commits).
        self.connection.execute("PRAGMA synchronous=NORMAL")
        self.connection.executescript(SCHEMA)
        self._depth = 0

    def transaction(self) -> _Transaction:
        """All or nothing; a nested transaction is a savepoint, so a failing step undoes only its own writes.

        Deeper nesting joins the enclosing savepoint: an error inside a step undoes the whole step anyway, and
        each savepoint costs two statements on the hottest path.
        """
        return _Transaction(self)

    def put(self, table: str, key: str, data: dict[str, Any], user_values: bool = False) -> None:
        """Store `data`; `user_values` when it holds the app's values as such (not inside JSON strings): they
        are then written exactly as `json` writes them (orjson alone would store NaN and infinities as null)."""
        text = encode_exact(data) if user_values else encode(data)
        self.connection.execute(
            f"INSERT INTO {table} (id, data) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET data = excluded.data",
            (key, text),
        )

    def delete(self, table: str, key: str) -> None:
        self.connection.execute(f"DELETE FROM {table} WHERE id = ?", (key,))

    def append_rows(self, table: str, instance: str, first: int, items: list[dict[str, Any]]) -> None:
        self.append_encoded(table, instance, first, [encode(item) for item in items])

    def append_encoded(self, table: str, instance: str, first: int, texts: list[str]) -> None:
        statement = _INSERT_ROW[table]
        if len(texts) == 1:  # most appends are one event: `execute` skips executemany's per-call set-up
            self.connection.execute(statement, (instance, first, texts[0]))
        else:
            rows = [(instance, first + offset, text) for offset, text in enumerate(texts)]
            self.connection.executemany(statement, rows)

    def put_row(self, table: str, instance: str, key: int, item: dict[str, Any]) -> None:
        self.append_rows(table, instance, key, [item])

    def delete_rows(self, table: str, instance: str, below: int | None = None, key: int | None = None) -> None:
        column = _COLUMNS[table].split(",")[0]
        if key is not None:
            self.connection.execute(f"DELETE FROM {table} WHERE instance = ? AND {column} = ?", (instance, key))
        elif below is not None:
            self.connection.execute(f"DELETE FROM {table} WHERE instance = ? AND {column} < ?", (instance, below))
        else:
            self.connection.execute(f"DELETE FROM {table} WHERE instance = ?", (instance,))

    def rows(self, table: str) -> dict[str, list[tuple[int, dict[str, Any]]]]:
        column = _COLUMNS[table]
        grouped: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        for instance, key, data in self.connection.execute(f"SELECT instance, {column} FROM {table} ORDER BY 1, 2"):
            grouped.setdefault(instance, []).append((key, json.loads(data)))
        return grouped

    def rows_of(self, table: str, instance: str) -> list[dict[str, Any]]:
        """One instance's rows of `table`, in order."""
        column = _COLUMNS[table]
        query = f"SELECT {column} FROM {table} WHERE instance = ? ORDER BY 1"
        return [json.loads(data) for _, data in self.connection.execute(query, (instance,))]

    def load_all(self, table: str) -> Iterator[dict[str, Any]]:
        for (data,) in self.connection.execute(f"SELECT data FROM {table}"):
            yield json.loads(data)

    def close(self) -> None:
        self.connection.close()


class _Transaction:
    """`Store.transaction`'s context manager: a plain class, since the engine enters one for every step and
    every save it makes (a generator-based one cost more than the savepoint statements)."""

    __slots__ = ("savepoint", "store")

    def __init__(self, store: Store) -> None:
        self.store = store
        self.savepoint: str | None = None  # None: joined the enclosing savepoint, nothing to end

    def __enter__(self) -> None:
        store = self.store
        depth = store._depth
        if depth >= 2:
            return
        self.savepoint = f"step{depth}"
        store.connection.execute("BEGIN" if depth == 0 else f"SAVEPOINT {self.savepoint}")
        store._depth = depth + 1

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: object) -> None:
        if self.savepoint is None:
            return
        store = self.store
        store._depth -= 1
        connection = store.connection
        if kind is None:
            connection.execute("COMMIT" if store._depth == 0 else f"RELEASE {self.savepoint}")
        elif store._depth == 0:
            connection.execute("ROLLBACK")
        else:
            connection.execute(f"ROLLBACK TO {self.savepoint}")
            connection.execute(f"RELEASE {self.savepoint}")
