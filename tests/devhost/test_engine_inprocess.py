"""devhost's engine end to end in this process: the features app's orchestrations, activities and entities run
through the real Durable SDK on `InProcessWorkers`, with the engine's real SQLite store, in well under a second
each (the subprocess tests in test_devhost.py cover the host and its language workers)."""

from __future__ import annotations

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
