"""The sweep: a timer that deletes container groups nobody owns any more and reclaims leases nobody will release.

A group is an orphan when it is older than the grace period and its owner task orchestration is unknown,
finished, or has moved on to a different group (a later attempt). Groups kept on purpose for inspection
(`onSuccess`/`onFailure: stop`) belong to finished tasks too, so they are kept only while the grace lasts.

A capacity lease (or queued request) is stale when it is older than the grace and its owner is unknown, over,
or on a later attempt (`acibatch.reconcile`); the sweep starts the reclaim orchestration to release those.

"Unknown" must mean the instance does not exist. The SDK's `get_status` cannot say so: the extension answers
404 with no body for a missing instance, and its local HTTP listener answers an unhandled error (a storage
hiccup) with a bodiless 500 too (`LocalHttpListener.HandleRequestAsync`); the SDK turns both into a status
with no runtime status. So an owner without one is asked once more on the status URL the client binding
gives, and counts as unknown only on a 404; anything else leaves its groups and leases alone until next time.
"""

from __future__ import annotations

import asyncio
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar
from urllib.parse import quote

import azure.durable_functions as df
import azure.functions as func

from acibatch import durable_names as names
from acibatch import reconcile
from acibatch.aci import GroupSummary
from acibatch.entitystate import read_stored
from acibatch.messages.sweep import OwnerProgress, ReclaimOrder
from acibatch.settings import current as settings
from acibatch.tenancy import CapacityState
from activities import bp
from activities.aci import gateway

log = logging.getLogger(__name__)

CAPACITY = df.EntityId(names.CAPACITY_ENTITY, names.CAPACITY_KEY)
STATUS_READS_IN_PARALLEL = 16
STATUS_CHECK_TIMEOUT_SECONDS = 30
# One reclaim run releases at most this many; the next sweep takes the rest (its history stays small).
MAX_RECLAIMS_PER_RUN = 200
NOT_FOUND = 404

Item = TypeVar("Item")
Result = TypeVar("Result")


class OwnerStatusUnclear(Exception):
    """The owner's status could not be read; the message holds the HTTP status, never the URL (it has a key)."""


def orphan_reason(group: GroupSummary, owner_status: Any, now: float, grace_seconds: float) -> str | None:
    """Why `group` is an orphan, or None when it must be kept."""
    created = group.tags.get("created", "")
    if created.isdigit() and now - int(created) < grace_seconds:
        return None
    runtime = getattr(owner_status, "runtime_status", None)
    if runtime is None:
        return "its owner orchestration does not exist"
    runtime_name = str(getattr(runtime, "value", runtime))
    if runtime_name not in reconcile.ALIVE:
        return f"its owner orchestration is {runtime_name}"
    current = OwnerProgress.parse(getattr(owner_status, "custom_status", None)).group_name
    if current is not None and current != group.name:
        return f"its owner has moved on to group {current}"
    return None


def _http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=STATUS_CHECK_TIMEOUT_SECONDS) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (OSError, ValueError) as error:
        raise OwnerStatusUnclear(f"the status API could not be reached ({type(error).__name__})") from None


async def owner_status(client: df.DurableOrchestrationClient, instance_id: str) -> Any:
    """The SDK's status of `instance_id`, or None when it certainly does not exist (see the module docstring).

    Raises `OwnerStatusUnclear` (or the SDK's exception) when that cannot be told.
    """
    status = await client.get_status(instance_id)
    if getattr(status, "runtime_status", None) is not None:
        return status
    url = client.create_http_management_payload(quote(instance_id, safe=""))["statusQueryGetUri"]
    code = await asyncio.to_thread(_http_status, url)
    if code == NOT_FOUND:
        return None
    raise OwnerStatusUnclear(f"the status API answered {code} for {instance_id}")


def _owner_of(status: Any) -> reconcile.OwnerStatus:
    if status is None:
        return reconcile.OwnerStatus(None)
    runtime = status.runtime_status
    attempt = OwnerProgress.parse(getattr(status, "custom_status", None)).attempt
    return reconcile.OwnerStatus(str(getattr(runtime, "value", runtime)), attempt)


async def _bounded(items: Iterable[Item], one: Callable[[Item], Awaitable[Result]]) -> list[Result]:
    semaphore = asyncio.Semaphore(STATUS_READS_IN_PARALLEL)

    async def run(item: Item) -> Result:
        async with semaphore:
            return await one(item)

    return await asyncio.gather(*(run(item) for item in items))


async def owner_statuses(client: df.DurableOrchestrationClient, owners: list[str]) -> dict[str, reconcile.OwnerStatus]:
    """Each owner's status; an owner whose status could not be read is left out (so it keeps its leases)."""

    async def one(owner: str) -> reconcile.OwnerStatus | None:
        try:
            return _owner_of(await owner_status(client, owner))
        except Exception as error:
            log.warning("lease sweep: status of %s unclear, keeping its leases: %s", owner, error)
            return None

    found = await _bounded(owners, one)
    return {owner: status for owner, status in zip(owners, found, strict=True) if status is not None}


async def sweep(client: df.DurableOrchestrationClient) -> list[str]:
    """Delete orphaned container groups; returns their names."""
    aci = gateway()
    grace = settings().sweep_grace_seconds
    groups = await asyncio.to_thread(aci.list_app_groups)
    deleted = []
    for group in groups:
        owner = group.tags.get("owner")
        try:
            status = await owner_status(client, owner) if owner else None
        except Exception as error:
            log.warning("orphan sweep: keeping %s, its owner's status is unclear: %s", group.name, error)
            continue
        reason = orphan_reason(group, status, time.time(), grace)
        if reason is None:
            continue
        log.info("orphan sweep: deleting %s because %s", group.name, reason)
        await asyncio.to_thread(aci.delete, group.name)
        deleted.append(group.name)
    return deleted


async def reclaim_leases(client: df.DurableOrchestrationClient) -> list[reconcile.Reclaim]:
    """Find stale capacity leases and start the reclaim orchestration for them; returns what it was given."""
    stored = await read_stored(client, CAPACITY)
    if not stored:
        return []
    state = CapacityState.from_dict(stored)
    now, grace = time.time(), settings().sweep_grace_seconds
    statuses = await owner_statuses(client, reconcile.owners_to_check(state, now, grace))
    stale = reconcile.stale_leases(state, statuses, now, grace)[:MAX_RECLAIMS_PER_RUN]
    if not stale:
        return []
    current = await client.get_status(names.RECLAIM_INSTANCE)
    runtime = getattr(current, "runtime_status", None)
    if runtime is not None and str(getattr(runtime, "value", runtime)) in reconcile.ALIVE:
        log.info("lease sweep: %d stale lease(s) wait for the running reclaim to finish", len(stale))
        return []
    try:
        order = ReclaimOrder(tuple(stale))
        await client.start_new(names.RECLAIM_ORCHESTRATOR, names.RECLAIM_INSTANCE, order.to_list())
    except Exception as error:  # another sweep started it first (409): that run or the next one does it
        log.info("lease sweep: reclaim not started: %s", error)
        return []
    for reclaim in stale:
        log.info("lease sweep: reclaiming %s because %s", reclaim.lease_id, reclaim.detail)
    return stale


@bp.timer_trigger(schedule="%BATCH_SWEEP_SCHEDULE%", arg_name="timer", run_on_startup=False)
@bp.durable_client_input(client_name="client")
async def orphan_sweep(timer: func.TimerRequest, client: df.DurableOrchestrationClient) -> None:
    # Each half runs even when the other fails: an ARM outage must not stop leases from being reclaimed.
    failures: list[BaseException] = []
    try:
        deleted = await sweep(client)
        if deleted:
            log.info("orphan sweep deleted %d group(s)", len(deleted))
    except Exception as error:
        log.exception("orphan sweep failed")
        failures.append(error)
    try:
        reclaimed = await reclaim_leases(client)
        if reclaimed:
            log.info("lease sweep is reclaiming %d lease(s)", len(reclaimed))
    except Exception as error:
        log.exception("lease sweep failed")
        failures.append(error)
    if failures:
        raise failures[0]  # the invocation shows as failed, as it did before for an ARM error
