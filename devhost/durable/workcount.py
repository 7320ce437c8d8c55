"""What the engine did, counted by kind and name: the Durable work an app costs, as a backend would bill it.

Azure bills a Durable app by what its backend stores and moves, not by devhost's CPU: every orchestrator episode,
activity execution, entity operation and client call is a round of queue messages and table writes on the Azure
Storage backend (a cost model from these counts is in `bench/workmodel.py`). The bench reads the counts through
the Durable API's devhost-only route (`GET /runtime/webhooks/durabletask/devhost/work`, system key) before and
after a job and divides by its tasks.
"""

from __future__ import annotations

from collections import Counter
from enum import StrEnum

from azure.durable_functions.models.history import HistoryEventType


class Work(StrEnum):
    EPISODE = "episodes"  # orchestrator executions (by orchestrator name)
    ACTIVITY = "activities"  # activity executions (by activity name)
    ENTITY_OPERATION = "entityOperations"  # operations run by an entity (by "entity.operation")
    ENTITY_BATCH = "entityBatches"  # entity executions, each running a batch of operations (by entity name)
    CLIENT_CALL = "clientCalls"  # Durable HTTP API calls (by route handler)
    MESSAGE = "messages"  # messages a backend would queue (by kind)


class WorkCount:
    def __init__(self) -> None:
        self.counts: dict[Work, Counter[str]] = {kind: Counter() for kind in Work}

    def add(self, kind: Work, name: str, times: int = 1) -> None:
        if kind is Work.MESSAGE and name.isdigit():
            name = event_type_name(int(name))
        self.counts[kind][name] += times

    def snapshot(self) -> dict[str, dict[str, int]]:
        return {str(kind): dict(sorted(names.items())) for kind, names in self.counts.items()}


def event_type_name(number: int) -> str:
    """A history event type as DTFx names it (`TaskCompleted`, `EventRaised`), from its number; the number itself,
    as text, for one the SDK does not know."""
    try:
        member = HistoryEventType(number)
    except ValueError:
        return str(number)
    return "".join(part.title() for part in member.name.split("_"))
