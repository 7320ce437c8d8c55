"""Orphan sweep: a timer that deletes container groups nobody owns any more.

A group is an orphan when it is older than the grace period and its owner task orchestration is unknown,
finished, or has moved on to a different group (a later attempt). Groups kept on purpose for inspection
(`onSuccess`/`onFailure: stop`) belong to finished tasks too, so they are kept only while the grace lasts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from acibatch.aci import GroupSummary
from acibatch.settings import current as settings
from activities import bp
from activities.aci import gateway

log = logging.getLogger(__name__)


def orphan_reason(group: GroupSummary, owner_status: Any, now: float, grace_seconds: float) -> str | None:
    """Why `group` is an orphan, or None when it must be kept."""
    created = group.tags.get("created", "")
    if created.isdigit() and now - int(created) < grace_seconds:
        return None
    runtime = getattr(owner_status, "runtime_status", None)
    if runtime is None:
        return "its owner orchestration does not exist"
    runtime_name = str(getattr(runtime, "value", runtime))
    if runtime_name not in {"Running", "Pending", "Suspended", "ContinuedAsNew"}:
        return f"its owner orchestration is {runtime_name}"
    custom = getattr(owner_status, "custom_status", None)
    current = custom.get("groupName") if isinstance(custom, dict) else None
    if current is not None and current != group.name:
        return f"its owner has moved on to group {current}"
    return None


async def sweep(client: df.DurableOrchestrationClient) -> list[str]:
    aci = gateway()
    grace = settings().sweep_grace_seconds
    groups = await asyncio.to_thread(aci.list_app_groups)
    deleted = []
    for group in groups:
        owner = group.tags.get("owner")
        status = await client.get_status(owner) if owner else None
        reason = orphan_reason(group, status, time.time(), grace)
        if reason is None:
            continue
        log.info("orphan sweep: deleting %s because %s", group.name, reason)
        await asyncio.to_thread(aci.delete, group.name)
        deleted.append(group.name)
    return deleted


@bp.timer_trigger(schedule="%BATCH_SWEEP_SCHEDULE%", arg_name="timer", run_on_startup=False)
@bp.durable_client_input(client_name="client")
async def orphan_sweep(timer: func.TimerRequest, client: df.DurableOrchestrationClient) -> None:
    deleted = await sweep(client)
    if deleted:
        log.info("orphan sweep deleted %d group(s)", len(deleted))
