"""The storage-transaction model (`bench/workmodel.py`): each kind of Durable work priced as the Azure Storage
backend's code spends it."""

from __future__ import annotations

from bench.workmodel import Assumptions, storage_transactions


def test_a_message_is_enqueued_received_and_deleted_once() -> None:
    cost = storage_transactions({"messages": {"EventRaised": 2.0}})
    assert (cost["queueEnqueue"], cost["queueDequeue"], cost["queueDelete"]) == (2.0, 2.0, 2.0)
    assert cost["total"] == 6.0


def test_control_messages_share_receives_but_work_items_are_received_one_at_a_time() -> None:
    work = {"messages": {"TaskCompleted": 32.0, "TaskScheduled": 32.0}}
    cost = storage_transactions(work, Assumptions(control_messages_per_receive=32.0))
    assert cost["queueDequeue"] == 1.0 + 32.0  # one batched receive, then every work item on its own
    assert cost["queueEnqueue"] == cost["queueDelete"] == 64.0


def test_an_episode_reads_its_history_and_writes_history_and_its_instance_row() -> None:
    cost = storage_transactions({"episodes": {"task": 3.0}})
    assert (cost["historyRead"], cost["historyWrite"], cost["instanceWrite"]) == (3.0, 3.0, 3.0)
    assert cost["total"] == 9.0


def test_an_entity_batch_is_a_work_item_but_its_operations_cost_only_their_messages() -> None:
    batch = storage_transactions({"entityBatches": {"capacity": 1.0}, "entityOperations": {"capacity.acquire": 5.0}})
    assert batch["total"] == 3.0  # history read + history write + instance write, whatever the batch holds


def test_client_calls_cost_what_the_extension_reads_and_writes() -> None:
    calls = {"raise_event": 1.0, "status": 2.0, "start": 1.0, "signal_entity": 4.0}
    cost = storage_transactions({"clientCalls": calls})
    # raise_event reads the status first; start reads (dedupe) and inserts the row; a signal is only its message
    assert cost["instanceRead"] == 1.0 + 2.0 + 1.0
    assert cost["instanceWrite"] == 1.0
    assert cost["total"] == 5.0
    assert "unknownClientCalls" not in cost


def test_an_unknown_route_is_priced_as_a_status_read_and_reported() -> None:
    cost = storage_transactions({"clientCalls": {"something_new": 0.5}})
    assert cost["instanceRead"] == 0.5
    assert cost["unknownClientCalls"] == 0.5


def test_a_whole_task_adds_up_by_kind() -> None:
    task = {
        "episodes": {"task": 2.0},
        "entityBatches": {"capacity": 1.0},
        "activities": {"create_group": 1.0},
        "messages": {"ExecutionStarted": 1.0, "TaskScheduled": 1.0, "TaskCompleted": 1.0, "EntityCall": 1.0},
        "clientCalls": {"raise_event": 1.0},
    }
    cost = storage_transactions(task)
    assert cost["total"] == 4 * 3 + 3 * 3 + 1  # messages, work items, the event's status read
    assert cost["total"] == sum(value for name, value in cost.items() if name != "total")
