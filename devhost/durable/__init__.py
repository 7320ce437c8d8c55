"""devhost's Durable engine (the Durable extension + DTFx for the Python SDK), one module per job:

- `vocabulary`: event shapes and types, statuses, timestamps, errors;
- `records`: the instance and entity records;
- `episode`: the pure function that applies an orchestrator episode's reply (one handler per `ActionType`);
- `engine`: the instances' transitions and the episode round trip;
- `scheduler`, `persistence`, `timers`, `activities`, `entities`, `runtime`: what runs around it;
- `client`: the client operations the Durable HTTP API serves;
- `workers`: the interface to what runs the app's functions (`devhost.workers`, `devhost.inprocess`).
"""

from devhost.durable.client import DurableClient
from devhost.durable.engine import Engine
from devhost.durable.records import EntityRecord, Instance
from devhost.durable.vocabulary import (
    EVENT_RAISED,
    EVENT_SENT,
    EXECUTION_COMPLETED,
    EXECUTION_STARTED,
    ORCHESTRATOR_COMPLETED,
    ORCHESTRATOR_STARTED,
    RUNNING_STATES,
    SUB_CREATED,
    TASK_COMPLETED,
    TASK_FAILED,
    TASK_SCHEDULED,
    TERMINAL_STATES,
    TIMER_CREATED,
    TIMER_FIRED,
    DurableError,
    event,
    iso,
)

__all__ = [
    "EVENT_RAISED",
    "EVENT_SENT",
    "EXECUTION_COMPLETED",
    "EXECUTION_STARTED",
    "ORCHESTRATOR_COMPLETED",
    "ORCHESTRATOR_STARTED",
    "RUNNING_STATES",
    "SUB_CREATED",
    "TASK_COMPLETED",
    "TASK_FAILED",
    "TASK_SCHEDULED",
    "TERMINAL_STATES",
    "TIMER_CREATED",
    "TIMER_FIRED",
    "DurableClient",
    "DurableError",
    "Engine",
    "EntityRecord",
    "Instance",
    "event",
    "iso",
]
