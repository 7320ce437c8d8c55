"""`schedule` entity (one per tenant's schedule, keyed `<tenant>:<scheduleId>`): the schedule's definition, its
suspend flag, manual runs not started yet and what it did last.

The API changes it by signals; the schedule orchestration reads it with a call at every wake-up, so a change
takes effect at the next tick. Operations are the pure `acibatch.schedules.apply_schedule_operation`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import azure.durable_functions as df

from acibatch import durable_names as names
from acibatch.durable_names import ScheduleIndexOp, ScheduleOp
from acibatch.entitystate import KeptState
from acibatch.messages.schedule import ChangeAt, ScheduleDelete, SchedulePut
from acibatch.schedules import ScheduleState, apply_schedule_operation
from entities import bp

STORED = KeptState(ScheduleState.from_dict, ScheduleState.to_dict)

# The API's changes, checked against their message types before they are applied. (`record` comes from this
# app's own orchestration, `get` has no input.)
CHANGES: Mapping[str, Callable[[Mapping[str, Any]], Any]] = {
    ScheduleOp.PUT: SchedulePut.parse,
    ScheduleOp.DELETE: ScheduleDelete.parse,
    ScheduleOp.SUSPEND: ChangeAt.parse,
    ScheduleOp.RESUME: ChangeAt.parse,
    ScheduleOp.TRIGGER: ChangeAt.parse,
}


def apply(state: ScheduleState, operation: str, data: Any) -> tuple[ScheduleState, Any]:
    """The new state and the operation's result; an unknown operation raises as `apply_schedule_operation` does."""
    parse = CHANGES.get(operation)
    if parse is not None:
        # The pure operations read the wire form; parsing first makes a malformed change fail here, by name.
        data = parse(data).to_dict()
    return apply_schedule_operation(state, operation, data)


@bp.entity_trigger(context_name="context", entity_name=names.SCHEDULE_ENTITY)
def schedule(context: df.DurableEntityContext) -> None:
    state, result = apply(STORED.load(context), context.operation_name, context.get_input())
    STORED.store(context, state)
    context.set_result(result)


@bp.entity_trigger(context_name="context", entity_name=names.SCHEDULE_INDEX_ENTITY)
def scheduleindex(context: df.DurableEntityContext) -> None:
    """A tenant's schedule ids (keyed by tenant), for `GET /api/schedules`: `add` and `remove` an id."""
    ids = set(context.get_state(list) or [])
    schedule_id = str(context.get_input())
    if context.operation_name == ScheduleIndexOp.ADD:
        ids.add(schedule_id)
    elif context.operation_name == ScheduleIndexOp.REMOVE:
        ids.discard(schedule_id)
    else:
        raise ValueError(f"scheduleindex entity has no operation '{context.operation_name}'")
    context.set_state(sorted(ids))
