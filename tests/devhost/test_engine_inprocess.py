"""devhost's engine end to end in this process: the features app's orchestrations, activities and entities run
through the real Durable SDK on `InProcessWorkers`, with the engine's real SQLite store, in well under a second
each (the subprocess tests in test_devhost.py cover the host and its language workers)."""

from __future__ import annotations

import asyncio
import time
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from devhost.durable import DurableClient, Engine
from devhost.durable.vocabulary import TERMINAL_STATES, DurableError
from devhost.inprocess import InProcessWorkers
from devhost.store import Store

APP = Path(__file__).parent / "apps" / "features"


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessWorkers]:
    with pytest.MonkeyPatch.context() as settings:
        settings.setenv("TICK_SCHEDULE", "0 0 0 1 1 *")  # the app's timer trigger needs one (and never runs here)
        settings.setenv("FEATURES_MARK_DIR", str(tmp_path_factory.mktemp("marks")))  # read when the app loads
        loaded = InProcessWorkers.load(APP)
        yield loaded
        loaded.close()


@pytest.fixture
async def client(
    workers: InProcessWorkers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[DurableClient]:
    monkeypatch.setenv("DEVHOST_ORCHESTRATION_SESSIONS", "verify")  # as the other devhost tests run

    async def no_http(request: dict[str, Any]) -> dict[str, Any]:
        raise AssertionError("no test here calls call_http")

    store = Store(tmp_path / "state.db")
    engine = Engine(workers.index, store, workers, no_http)
    with warnings.catch_warnings():  # the SDK warns about untyped inputs: a worker does not stop for it
        warnings.simplefilter("ignore", DeprecationWarning)
        await engine.start()
        yield DurableClient(engine)
        await engine.stop()
    store.close()


async def finish(client: DurableClient, name: str, input_value: Any = None, instance_id: str | None = None) -> Any:
    instance = client.start(name, instance_id, input_value)
    await client.wait_for_completion(instance.id, timeout=10)
    assert instance.status in TERMINAL_STATES, f"{name} is still {instance.status}"
    return instance


async def test_a_sequence_of_activities_completes_with_their_results(client: DurableClient) -> None:
    instance = await finish(client, "sequence", '["Tokyo", "Lima"]')
    assert (instance.status, instance.output) == ("Completed", ["Hello Tokyo!", "Hello Lima!", "Hello async!"])


async def test_a_fan_out_of_activities_is_summed(client: DurableClient) -> None:
    instance = await finish(client, "fan_out", "20")
    assert (instance.status, instance.output) == ("Completed", sum(i * i for i in range(20)))


async def test_entity_signals_and_calls_and_a_failing_operation(client: DurableClient) -> None:
    instance = await finish(client, "uses_entity", '"k1"')
    assert instance.status == "Completed"
    assert instance.output["after_add"] == 15 and instance.output["state"] == 15
    assert "entity operation failed" in instance.output["caught"]
    assert client.entity_state("@counter@k1") == (15, True)


async def test_continue_as_new_runs_every_generation(client: DurableClient) -> None:
    instance = await finish(client, "counter_loop", "0")
    assert (instance.status, instance.output) == ("Completed", "finished at 3")


async def test_retries_with_their_timers_and_a_child_reporting_to_its_parent(client: DurableClient) -> None:
    instance = await finish(client, "retries", None, "with-retries")
    assert instance.status == "Completed"
    assert instance.output == ["ok after 3", "gave up: True", {"child_of": "with-retries", "value": 49}]


async def test_an_unknown_activity_fails_the_orchestration_with_the_extension_message(client: DurableClient) -> None:
    instance = await finish(client, "calls_missing")
    assert instance.status == "Failed"
    assert "The function 'no_such_activity' doesn't exist, is disabled, or is not an activity function." in str(
        instance.output
    )


async def settle_and_terminate(client: DurableClient, instance_id: str) -> None:
    """What the Durable HTTP API's terminate does (`devhost.durableapi`)."""
    async with client.settled(instance_id):
        client.terminate(instance_id, "enough")


async def test_client_operations_on_unknown_ids_leave_no_runtime_behind(client: DurableClient) -> None:
    engine = client.engine
    kept = set(engine.runtimes)
    for n in range(1000):
        with pytest.raises(DurableError) as refused:
            await settle_and_terminate(client, f"nobody-{n}")
        assert refused.value.status == 404
    assert set(engine.runtimes) == kept


async def test_a_purged_instance_gets_no_runtime_back(client: DurableClient) -> None:
    instance = await finish(client, "sequence", '["Oslo"]', "to-purge")
    assert client.purge(instance.id) and instance.id not in client.engine.runtimes
    client.engine.after_episode(instance.id)  # what an episode in flight when the purge came does as it ends
    with pytest.raises(DurableError):
        await settle_and_terminate(client, instance.id)
    assert instance.id not in client.engine.runtimes and instance.id not in client.instances


async def test_a_timer_of_the_generation_before_a_continue_as_new_cannot_unarm_the_new_ones(
    client: DurableClient,
) -> None:
    instance = client.start("waits_for_go", "timers", None)
    for _ in range(200):  # until its first episode has run: it waits for "Go"
        if instance.history:
            break
        await asyncio.sleep(0.01)
    engine = client.engine
    runtime = engine.runtime(instance.id)
    runtime.end_execution()  # continue-as-new starts the new generation's table, then the last episode's
    engine.timers.arm(instance.id, "the-generation-before", 0, time.time())  # timers are armed into it
    engine.timers.arm(instance.id, instance.execution_id, 0, time.time() + 60)  # ids restart at 0
    new_timer = list(runtime.timer_handles.values())[-1]
    await asyncio.sleep(0.05)  # the old timer fires (and is dropped: its execution is over)
    assert not new_timer.cancelled()
    await settle_and_terminate(client, instance.id)  # finishing must cancel what the new generation armed
    assert new_timer.cancelled() and runtime.timer_handles == {}
