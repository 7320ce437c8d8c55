"""`schedule` entity (one per tenant's schedule, keyed `<tenant>:<scheduleId>`): the schedule's definition, its
suspend flag, manual runs not started yet and what it did last.

The API changes it by signals; the schedule orchestration reads it with a call at every wake-up, so a change
takes effect at the next tick. Operations are the pure `acibatch.schedules.apply_schedule_operation`.
"""

from __future__ import annotations

import azure.durable_functions as df

from acibatch import durable_names as names
from acibatch.entitystate import KeptState
from acibatch.schedules import ScheduleState, apply_schedule_operation
from entities import bp

STORED = KeptState(ScheduleState.from_dict, ScheduleState.to_dict)


@bp.entity_trigger(context_name="context", entity_name=names.SCHEDULE_ENTITY)
def schedule(context: df.DurableEntityContext) -> None:
    state, result = apply_schedule_operation(STORED.load(context), context.operation_name, context.get_input())
    STORED.store(context, state)
    context.set_result(result)


@bp.entity_trigger(context_name="context", entity_name=names.SCHEDULE_INDEX_ENTITY)
def scheduleindex(context: df.DurableEntityContext) -> None:
    """A tenant's schedule ids (keyed by tenant), for `GET /api/schedules`: `add` and `remove` an id."""
    ids = set(context.get_state(list) or [])
    schedule_id = str(context.get_input())
    if context.operation_name == "add":
        ids.add(schedule_id)
    elif context.operation_name == "remove":
        ids.discard(schedule_id)
    else:
        raise ValueError(f"scheduleindex entity has no operation '{context.operation_name}'")
    context.set_state(sorted(ids))
