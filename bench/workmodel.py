"""A model, not a measurement: the Azure Storage transactions that devhost's Durable work counts would cost.

devhost counts what its engine did (`devhost/durable/workcount.py`); the Azure Storage backend of Durable
Functions (DTFx's `DurableTask.AzureStorage`, in Azure/durabletask) turns each piece of that work into queue and
table transactions, which are what a user pays for and what bounds a task hub's throughput. This module maps one
onto the other, from reading that provider's source (paths under src/DurableTask.AzureStorage/):

- A queued message is added once, received once and deleted once. Orchestrations send theirs in
  `AzureStorageOrchestrationService.CommitOutboundQueueMessages` (`AddMessageAsync` per message: activity work
  items go to the work-item queue, everything else to a control queue), an activity's result in
  `CompleteTaskActivityWorkItemAsync`, clients' start and event messages in `CreateTaskOrchestrationAsync` /
  `SendTaskOrchestrationMessageAsync`. Control-queue messages are received in batches
  (`Messaging/ControlQueue.GetMessagesAsync`, up to `ControlQueueBatchSize`, 32 by default), work items one at a
  time (`Messaging/WorkItemQueue.GetMessageAsync`); each consumed message is deleted on its own
  (`DeleteMessageBatchAsync` deletes them one call each after the checkpoint; the activity path deletes its work
  item after enqueuing the result).
- An orchestrator episode is one work item: its history is read first (`OrchestrationSessionManager.
  ScheduleOrchestrationStatePrefetch` -> `Tracking/AzureTableTrackingStore.GetHistoryEventsAsync`, one table
  query; no extended sessions for out-of-process languages such as Python), then its new events are written as
  one entity-group transaction per 99 rows plus the sentinel row (`AzureTableTrackingStore.UpdateStateAsync` ->
  `UploadHistoryBatch`), then the instance's row is merged (`UpdateInstanceTableAsync`).
- An entity is an orchestration to this backend: each batch of operations is one work item, read and checkpointed
  like an episode, and it always starts a new execution carrying the state (DurableTask.Core's
  `TaskEntityDispatcher`, "as in continue-as-new"). Its operations cost only their messages (requests and, for
  calls, the answer, which devhost counts as the caller's EventRaised).
- Client calls (the Durable extension's `ContextImplementations/DurableClient.cs` over the same provider): a
  status query reads the instance's row (`AzureTableTrackingStore.GetStateAsync`); raising an event reads the
  status first (`RaiseEventInternalAsync`, since `AzureStorageDurabilityProvider.CheckStatusBeforeRaiseEvent` is
  true) and then sends the message; a start reads the row for its dedupe check and inserts it
  (`CreateTaskOrchestrationAsync`: `FetchInstanceStatusAsync`, `SetNewExecutionAsync`); signalling an entity only
  sends its message; terminate, suspend, resume, restart and rewind read the status before their message.

Left out, and said so where the figures are shown: the partition manager's lease renewals and the idle polls of
empty queues (a cost per task hub and time, not per task); history reads longer than one page (1,000 rows);
payloads over the queue's 45 KB (`MessageManager`: compressed to a blob, one upload and one download more) or over
a table property's 60 KB of UTF-16 (`AzureTableTrackingStore.CompressLargeMessageAsync`: one blob write more): the
counts carry no sizes. History fetched with `showHistory` on a status call costs one more query each.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from devhost.durable.workcount import Work


class Transaction(StrEnum):
    QUEUE_ENQUEUE = "queueEnqueue"
    QUEUE_DEQUEUE = "queueDequeue"
    QUEUE_DELETE = "queueDelete"
    HISTORY_READ = "historyRead"  # a query of an instance's history rows
    HISTORY_WRITE = "historyWrite"  # an entity-group transaction of history rows
    INSTANCE_READ = "instanceRead"  # a point read or query of the Instances table
    INSTANCE_WRITE = "instanceWrite"  # an insert or merge of an instance's row


# The message devhost counts for an activity's work item: the only kind on the work-item queue, received one at a time.
WORK_ITEM_MESSAGE = "TaskScheduled"

# What each Durable HTTP API call costs beyond the message it may send (counted among the messages), by the name
# of devhost's route handler (`devhost/durableapi.py`).
_STATUS_READ = {Transaction.INSTANCE_READ: 1.0}
CLIENT_CALL_COST: dict[str, dict[Transaction, float]] = {
    "start": {Transaction.INSTANCE_READ: 1.0, Transaction.INSTANCE_WRITE: 1.0},
    "status": _STATUS_READ,
    "instances_query": _STATUS_READ,  # one page of the Instances table
    "entity_state": _STATUS_READ,
    "raise_event": _STATUS_READ,
    "terminate": _STATUS_READ,
    "suspend": _STATUS_READ,
    "resume": _STATUS_READ,
    "restart": _STATUS_READ,
    "rewind": _STATUS_READ,
    "signal_entity": {},
    # Purging one instance: its row read, its history read and deleted (one batch), its row deleted.
    "purge": {
        Transaction.INSTANCE_READ: 1.0, Transaction.HISTORY_READ: 1.0,
        Transaction.HISTORY_WRITE: 1.0, Transaction.INSTANCE_WRITE: 1.0,
    },
}  # fmt: skip
# A route this table does not know is costed as one status read, the cheapest call (the figures say which).
UNKNOWN_CLIENT_CALL = _STATUS_READ


@dataclass(frozen=True)
class Assumptions:
    """What the counts cannot tell, set to the dearer end of what the provider does."""

    # Control-queue messages one receive returns: 1 (every message its own poll, a lightly loaded hub) up to
    # ControlQueueBatchSize (32) when messages pile up.
    control_messages_per_receive: float = 1.0
    # History transactions an episode writes: 1 while it adds fewer than 99 rows, as acibatch's episodes do.
    history_writes_per_episode: float = 1.0


def storage_transactions(
    work: Mapping[str, Mapping[str, float]], assumptions: Assumptions = Assumptions()
) -> dict[str, float]:
    """Azure Storage transactions for `work` (devhost's counts by kind then name, e.g. per task), by kind and
    in `total`; unknown client routes in `unknownClientCalls` (costed as a status read)."""
    cost = dict.fromkeys(Transaction, 0.0)
    messages = work.get(Work.MESSAGE, {})
    for name, count in messages.items():
        cost[Transaction.QUEUE_ENQUEUE] += count
        cost[Transaction.QUEUE_DELETE] += count
        per_receive = 1.0 if name == WORK_ITEM_MESSAGE else assumptions.control_messages_per_receive
        cost[Transaction.QUEUE_DEQUEUE] += count / per_receive
    # Orchestrator episodes and entity batches are both orchestration work items to this backend.
    work_items = sum(work.get(Work.EPISODE, {}).values()) + sum(work.get(Work.ENTITY_BATCH, {}).values())
    cost[Transaction.HISTORY_READ] += work_items
    cost[Transaction.HISTORY_WRITE] += work_items * assumptions.history_writes_per_episode
    cost[Transaction.INSTANCE_WRITE] += work_items
    unknown = 0.0
    for route, count in work.get(Work.CLIENT_CALL, {}).items():
        if route not in CLIENT_CALL_COST:
            unknown += count
        for transaction, times in CLIENT_CALL_COST.get(route, UNKNOWN_CLIENT_CALL).items():
            cost[transaction] += times * count
    result = {str(kind): round(value, 2) for kind, value in cost.items()}
    result["total"] = round(sum(cost.values()), 2)
    if unknown:
        result["unknownClientCalls"] = round(unknown, 2)
    return result
