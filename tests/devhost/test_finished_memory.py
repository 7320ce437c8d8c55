"""A finished instance keeps only its document in the host's memory: its history is read back from the store.

A 10,000-task job finishes 10,000 task orchestrations; holding each one's whole history (and its runtime) in
the host would grow devhost's memory with every task ever run. Azure keeps them in its tables, and so does
devhost, while the Durable API still shows the history, a restart after a reload still finds the instance, and
the same id can run again. Real SDK on `InProcessWorkers`, real SQLite store.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from devhost.durable import DurableClient, Engine
from devhost.durable.vocabulary import TERMINAL_STATES
from devhost.inprocess import InProcessWorkers
from devhost.store import Store

APP = Path(__file__).parent / "apps" / "features"


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessWorkers]:
    with pytest.MonkeyPatch.context() as settings:
        settings.setenv("TICK_SCHEDULE", "0 0 0 1 1 *")  # the app's timer trigger needs one (and never runs here)
        settings.setenv("FEATURES_MARK_DIR", str(tmp_path_factory.mktemp("marks")))
        loaded = InProcessWorkers.load(APP)
        yield loaded
        loaded.close()


async def no_http(request: dict[str, Any]) -> dict[str, Any]:
    raise AssertionError("no test here calls call_http")


@pytest.fixture(autouse=True)
def untyped_inputs_allowed() -> Iterator[None]:
    with warnings.catch_warnings():  # the SDK warns about untyped inputs: a worker does not stop for it
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


async def started_engine(workers: InProcessWorkers, path: Path) -> tuple[Engine, Store]:
    store = Store(path)
    engine = Engine(workers.index, store, workers, no_http)
    await engine.start()
    return engine, store


@pytest.fixture
async def client(
    workers: InProcessWorkers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[DurableClient]:
    monkeypatch.setenv("DEVHOST_ORCHESTRATION_SESSIONS", "verify")  # as the other devhost tests run
    engine, store = await started_engine(workers, tmp_path / "state.db")
    yield DurableClient(engine)
    await engine.stop()
    store.close()


async def finish(client: DurableClient, name: str, input_value: Any, instance_id: str) -> Any:
    instance = client.start(name, instance_id, input_value)
    await client.wait_for_completion(instance.id, timeout=10)
    assert instance.status in TERMINAL_STATES, f"{name} is still {instance.status}"
    return instance


def kinds(history: list[dict[str, Any]]) -> list[int]:
    return [item["EventType"] for item in history]


def execution_of(history: list[dict[str, Any]]) -> str:
    """The execution id its ExecutionStarted event names."""
    return str(next(item for item in history if item["EventType"] == 0)["OrchestrationInstance"]["ExecutionId"])


async def test_a_finished_instance_lets_go_of_its_history_and_runtime(client: DurableClient) -> None:
    instance = await finish(client, "sequence", '["Oslo", "Lima"]', "done-1")
    assert instance.status == "Completed", instance.output
    assert instance.history == [] and instance.history_in_store
    assert (instance.action_ids, instance.retries, instance.entity_requests) == ([], {}, {})
    assert instance.id not in client.engine.runtimes
    stored = client.history(instance)  # what showHistory answers: the whole history, from the store
    assert execution_of(stored) == instance.execution_id and kinds(stored)[-1] == 1  # ... ExecutionCompleted
    assert sum(1 for kind in kinds(stored) if kind == 4) == 3  # TaskScheduled: one per city, one async
    assert "history_in_store" not in instance.meta()  # never written into the instance's document


async def test_the_same_id_runs_again_with_a_history_of_its_own(client: DurableClient) -> None:
    first = await finish(client, "sequence", '["Oslo"]', "again")
    first_history = client.history(first)
    second = await finish(client, "sequence", '["Oslo", "Lima", "Kyiv"]', "again")
    assert second is not first and second.status == "Completed"
    again = client.history(second)
    assert sum(1 for kind in kinds(again) if kind == 4) == 4  # its own activities, none of the first run's
    assert execution_of(again) == second.execution_id != first.execution_id
    assert len(again) > len(first_history)


async def test_a_reload_keeps_finished_instances_out_of_memory_and_their_history_in_the_store(
    workers: InProcessWorkers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEVHOST_ORCHESTRATION_SESSIONS", "verify")
    engine, store = await started_engine(workers, tmp_path / "state.db")
    client = DurableClient(engine)
    done = await finish(client, "sequence", '["Oslo"]', "reloaded")
    before = client.history(done)
    await engine.stop()
    store.close()

    engine, store = await started_engine(workers, tmp_path / "state.db")
    try:
        client = DurableClient(engine)
        reloaded = client.instances["reloaded"]
        assert reloaded.status == "Completed" and reloaded.history == [] and reloaded.history_in_store
        assert "reloaded" not in engine.runtimes
        assert client.history(reloaded) == before
        restarted = client.restart("reloaded", new_id=False)  # the same id, a new execution
        await client.wait_for_completion(restarted.id, timeout=10)
        assert restarted.status == "Completed" and restarted.execution_id != done.execution_id
        assert execution_of(client.history(restarted)) == restarted.execution_id
    finally:
        await engine.stop()
        store.close()


async def test_with_sessions_on_the_host_keeps_no_encoded_past_and_a_session_miss_still_replays_it_all(
    workers: InProcessWorkers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEVHOST_ORCHESTRATION_SESSIONS", "1")
    engine, store = await started_engine(workers, tmp_path / "state.db")
    held = workers.worker.sessions
    assert held is not None
    monkeypatch.setattr(held, "verify", False)  # the workers as the default mode runs them
    try:
        client = DurableClient(engine)
        instance = client.start("waits_for_go", "waiting", None)
        for _ in range(200):  # until its first episode has been applied: it waits for "Go"
            if instance.history:
                break
            await asyncio.sleep(0.01)
        assert instance.history and engine.runtime(instance.id).played == []
        held.sessions.clear()  # the worker lost the session (evicted): the next episode needs the whole history
        missed = held.replayed
        client.raise_event(instance.id, "Go", '"now"')
        await client.wait_for_completion(instance.id, timeout=10)
        assert (instance.status, instance.output) == ("Completed", "now")
        assert held.replayed == missed + 1  # replayed from the whole history the host encoded again
    finally:
        await engine.stop()
        store.close()
