"""Reclaim orchestrator: give leaked capacity leases back, and wake whoever that lets run.

The sweep (`activities/sweep.py`) decides what is stale (`acibatch.reconcile`) and starts this as a single
instance (`RECLAIM_INSTANCE`). Each lease goes through the capacity entity's own `release`, exactly as its owner
would have released it, so the fair queue hands the freed capacity on; the waiters it granted are woken with the
same `wake_waiters` activity the task orchestrator uses. A release of a lease that is already gone changes
nothing, so a stale decision (the owner released it meanwhile) or a second run is harmless. Usage is not
recorded for a reclaimed lease: how long its container really ran is unknown, and the lease outlived it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import azure.durable_functions as df

from acibatch import durable_names as names
from acibatch.messages.capacity import ReleaseAnswer, ReleaseAsk
from orchestrators import bp, calls
from orchestrators.calls import Steps

log = logging.getLogger(__name__)


@bp.orchestration_trigger(context_name="context", orchestration=names.RECLAIM_ORCHESTRATOR)
def reclaim_orchestrator(context: df.DurableOrchestrationContext) -> Steps[dict[str, list[str]]]:
    stale: list[dict[str, Any]] = list(context.get_input() or [])
    if not stale:
        return {"released": [], "withdrawn": [], "granted": []}
    now = context.current_utc_datetime.timestamp()
    # All in one batch: the entity runs them in this order (queued requests come first, see reconcile.py).
    answers = yield context.task_all([
        calls.release(context, ReleaseAsk(item["leaseId"], now)) for item in stale
    ])  # fmt: skip
    reclaimed = {item["leaseId"] for item in stale}
    released: list[str] = []  # leases that were running
    withdrawn: list[str] = []  # queued requests taken out, or leases their owner had released meanwhile
    granted: list[Mapping[str, Any]] = []
    for item, answer in zip(stale, map(ReleaseAnswer.parse, answers), strict=True):
        (released if answer.released else withdrawn).append(item["leaseId"])
        # A lease granted by one release and reclaimed by a later one belongs to a dead owner: no wake-up.
        granted += [lease for lease in answer.granted if lease["leaseId"] not in reclaimed]
    woken = [lease["leaseId"] for lease in granted]
    if granted:
        # The granted leases as the entity gave them (with their create slots), as the task's release passes them.
        try:
            yield calls.wake_waiters(context, granted)
        except Exception as error:  # each waiter's own back-off timer heals a lost wake-up
            if not context.is_replaying:
                log.warning("reclaim could not wake %s: %s", ", ".join(woken), error)
    if not context.is_replaying:
        for item in stale:
            log.warning("reclaimed capacity lease %s: %s (%s)", item["leaseId"], item.get("detail"), item["reason"])
        if woken:
            log.info("reclaimed capacity went to %d waiting lease(s): %s", len(woken), ", ".join(woken))
    return {"released": released, "withdrawn": withdrawn, "granted": woken}
