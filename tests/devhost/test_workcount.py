"""devhost's count of the Durable work it did (`devhost/durable/workcount.py`): by kind and name, as the bench
reads it, on the engine running the features app through the real Durable SDK in this process."""

from __future__ import annotations

from devhost.durable import DurableClient
from devhost.durable.workcount import Work, WorkCount, event_type_name
from tests.devhost import test_engine_inprocess as engine_tests

# The in-process engine and its workers, as the engine tests set them up.
workers = engine_tests.workers
client = engine_tests.client


def test_counts_are_kept_by_kind_and_name_and_snapshot_as_plain_dicts() -> None:
    work = WorkCount()
    work.add(Work.EPISODE, "task")
    work.add(Work.EPISODE, "task", 2)
    work.add(Work.MESSAGE, "5")  # the engine hands a history event's type as its number
    work.add(Work.MESSAGE, "EntitySignal")
    snapshot = work.snapshot()
    assert snapshot["episodes"] == {"task": 3}
    assert snapshot["messages"] == {"EntitySignal": 1, "TaskCompleted": 1}
    assert set(snapshot) == {str(kind) for kind in Work}
    work.add(Work.EPISODE, "task")
    assert snapshot["episodes"] == {"task": 3}  # a snapshot does not move with the counts


def test_event_types_are_named_as_dtfx_names_them() -> None:
    assert [event_type_name(n) for n in (0, 4, 7, 15)] == [
        "ExecutionStarted", "TaskScheduled", "SubOrchestrationInstanceCreated", "EventRaised",
    ]  # fmt: skip
    assert event_type_name(999) == "999"


async def test_a_sequence_counts_its_episodes_activities_and_messages(client: DurableClient) -> None:
    before = client.engine.work.snapshot()
    await engine_tests.finish(client, "sequence", '["Tokyo", "Lima"]')
    after = client.engine.work.snapshot()
    moved = {kind: {n: c - before[kind].get(n, 0) for n, c in names.items()} for kind, names in after.items()}
    assert moved["episodes"] == {"sequence": 4}  # started, then after each of its three activities
    assert moved["activities"] == {"say_hello": 2, "async_hello": 1}
    assert moved["messages"] == {"ExecutionStarted": 1, "TaskScheduled": 3, "TaskCompleted": 3}
    assert moved["clientCalls"] == {}  # the in-process client is not the Durable HTTP API


async def test_entity_operations_batches_and_their_messages_are_counted(client: DurableClient) -> None:
    await engine_tests.finish(client, "uses_entity", '"k9"')
    work = client.engine.work.snapshot()
    assert work["entityOperations"] == {"counter.add": 2, "counter.explode": 1, "counter.get": 1}
    assert 1 <= work["entityBatches"]["counter"] <= 4  # a signal and a call may share a batch
    # One signal and three calls sent; each call answered to the orchestration as an EventRaised.
    assert work["messages"]["EntitySignal"] == 1 and work["messages"]["EntityCall"] == 3
    assert work["messages"]["EventRaised"] == 3
    assert work["episodes"] == {"uses_entity": 4}
