"""Tenant administration: create/update quotas, rotate keys, show quota, running work and usage."""

from __future__ import annotations

import asyncio
import functools
import json
import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from acibatch import durable_names as names
from acibatch.accounts import TenantState
from acibatch.apikeys import generate_api_key, hash_api_key
from acibatch.durable_names import CapacityOp, TenantOp
from acibatch.entitystate import read_stored
from acibatch.messages.capacity import QuotaChange
from acibatch.messages.tenant import TenantConfig
from acibatch.naming import validate_tenant_id
from acibatch.tenancy import CapacityState, Quota, snapshot
from api import bp
from api.common import (
    ApiError,
    authenticate,
    finite,
    handle_errors,
    json_response,
    read_json,
    read_tenant,
    require_admin,
)

CAPACITY = df.EntityId(names.CAPACITY_ENTITY, names.CAPACITY_KEY)
QUOTA_FIELDS = {
    "maxGroups": (1, 10_000, True),
    "maxCores": (0.1, 10_000.0, False),
    "maxMemoryGb": (0.1, 100_000.0, False),
    "weight": (0.01, 1_000.0, False),
}
DEFAULT_QUOTA = {"maxGroups": 10, "maxCores": 10.0, "maxMemoryGb": 40.0, "weight": 1.0}
# How long create/update/rotate wait for the entities to hold the change before answering 202 instead.
# Signals travel through the task hub's queues. When the instance that receives the request does not poll the
# entity's partition (a scaled-out app), an idle poller sees the signal only on its next poll, up to
# host.json's maxQueuePollingInterval (default 30 s) later. The default wait covers one whole interval plus
# time for the entity to run, and stays under this repo's client timeout (60 s) and far under Azure's 230 s.
DEFAULT_QUEUE_POLL_SECONDS = 30.0
APPLY_MARGIN_SECONDS = 20.0
DEFAULT_WAIT_CAP_SECONDS = 50.0
MAX_PREFER_WAIT_SECONDS = 200  # a caller may ask for more with `Prefer: wait=N`; the front end cuts at 230 s
HOST_JSON = Path(__file__).resolve().parent.parent / "host.json"
TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:\.(\d{1,7}))?)?$")
PREFER_WAIT = re.compile(r"^wait\s*=\s*(.*)$", re.IGNORECASE)


@functools.cache
def queue_poll_seconds() -> float:
    """host.json's extensions.durableTask.storageProvider.maxQueuePollingInterval, in seconds (30 when unset)."""
    try:
        host = json.loads(HOST_JSON.read_text())
        value = str(host["extensions"]["durableTask"]["storageProvider"]["maxQueuePollingInterval"])
    except (OSError, ValueError, KeyError, TypeError):
        return DEFAULT_QUEUE_POLL_SECONDS
    match = TIMESPAN.match(value.strip())
    if match is None:
        return DEFAULT_QUEUE_POLL_SECONDS  # the Functions host refuses to start on a malformed TimeSpan anyway
    days, hours, minutes, seconds, fraction = match.groups()
    total = int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + int(seconds or 0)
    return total + float(f"0.{fraction or 0}") or DEFAULT_QUEUE_POLL_SECONDS


def default_wait_seconds() -> float:
    return min(queue_poll_seconds() + APPLY_MARGIN_SECONDS, DEFAULT_WAIT_CAP_SECONDS)


@dataclass(frozen=True)
class Preference:
    """What the caller asked for in `Prefer` (RFC 7240): how long to wait, and which preference was applied."""

    wait: float
    applied: str | None  # the Preference-Applied header value, if a preference was honoured


def read_preference(req: func.HttpRequest) -> Preference:
    """`Prefer: wait=N` (whole seconds, at most MAX_PREFER_WAIT_SECONDS) and/or `Prefer: respond-async`."""
    wait: int | None = None
    respond_async = False
    for item in str(req.headers.get("Prefer", "")).split(","):
        token = item.split(";", 1)[0].strip()
        if token.lower() == "respond-async":
            respond_async = True
            continue
        match = PREFER_WAIT.match(token)
        if match is None:
            continue  # RFC 7240: preferences a server does not know are ignored
        raw = match.group(1).strip().strip('"')
        if not re.fullmatch(r"[0-9]{1,9}", raw):
            raise ApiError(
                400, "InvalidPrefer", f"Prefer: wait={raw[:20]} is invalid: give whole seconds, e.g. 'Prefer: wait=30'"
            )
        wait = min(int(raw), MAX_PREFER_WAIT_SECONDS)
    if wait is not None:
        return Preference(float(wait), f"wait={wait}")
    if respond_async:
        return Preference(0.0, "respond-async")
    return Preference(default_wait_seconds(), None)


def tenant_from_route(req: func.HttpRequest) -> str:
    tenant = str(req.route_params.get("tenant", ""))
    problem = validate_tenant_id(tenant)
    if problem:
        raise ApiError(400, "InvalidTenantId", f"tenant id '{tenant[:80]}': {problem}")
    return tenant


def parse_quota(body: object, current: Quota | None) -> Quota:
    """A quota from a PUT body; omitted fields keep their current (or default) value."""
    if not isinstance(body, dict):
        raise ApiError(400, "InvalidQuota", 'the body must be a JSON object such as {"maxGroups": 5}')
    errors = [
        {"path": field, "message": f"unknown field; allowed: {', '.join(QUOTA_FIELDS)}"}
        for field in sorted(set(body) - set(QUOTA_FIELDS))
    ]
    values: dict[str, Any] = dict(DEFAULT_QUOTA)
    if current is not None:
        values.update(current_quota_dict(current))
    for field, (low, high, integer) in QUOTA_FIELDS.items():
        if field not in body:
            continue
        value = body[field]
        kind = "an integer" if integer else "a number"
        if not finite(value) or (integer and not isinstance(value, int)) or not low <= value <= high:
            errors.append({"path": field, "message": f"must be {kind} from {low} to {high}"})
        else:
            values[field] = value
    if errors:
        raise ApiError(400, "InvalidQuota", "the quota is invalid: fix every listed field", errors)
    return Quota(
        max_groups=int(values["maxGroups"]),
        max_cores=float(values["maxCores"]),
        max_memory_gb=float(values["maxMemoryGb"]),
        weight=float(values["weight"]),
    )


def current_quota_dict(quota: Quota) -> dict[str, Any]:
    return {
        "maxGroups": quota.max_groups,
        "maxCores": quota.max_cores,
        "maxMemoryGb": quota.max_memory_gb,
        "weight": quota.weight,
    }


async def wait_until(check: Callable[[], Awaitable[bool]], seconds: float) -> bool:
    """Entity signals apply asynchronously: whether the change became visible within `seconds` (checked at once,
    then at growing intervals up to 1 s)."""
    deadline = asyncio.get_running_loop().time() + seconds
    delay = 0.02
    while not await check():
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            return False
        await asyncio.sleep(min(delay, remaining))
        delay = min(delay * 2, 1.0)
    return True


async def read_capacity(client: df.DurableOrchestrationClient) -> CapacityState | None:
    stored = await read_stored(client, CAPACITY)
    return CapacityState.from_dict(stored) if stored else None


async def apply_tenant(
    client: df.DurableOrchestrationClient, tenant: str, quota: Quota, key_hash: str | None, wait: float
) -> bool:
    """Send the quota (and new key hash) to the tenant and capacity entities; whether both hold it within `wait`.

    The task hub has stored the signals when `signal_entity` returns, so a change not visible yet still applies.
    """
    config = TenantConfig(quota, key_hash)
    await client.signal_entity(df.EntityId(names.TENANT_ENTITY, tenant), TenantOp.CONFIGURE, config.to_dict())
    await client.signal_entity(CAPACITY, CapacityOp.SET_QUOTA, QuotaChange(tenant, quota).to_dict())

    async def applied() -> bool:
        state = await read_tenant(client, tenant)
        capacity = await read_capacity(client)
        return (
            state is not None
            and state.quota == quota
            and (key_hash is None or state.api_key_hash == key_hash)
            and capacity is not None
            and capacity.quotas.get(tenant) == quota
        )

    return await wait_until(applied, wait)


def answer(
    req: func.HttpRequest, tenant: str, body: dict[str, Any], applied: bool, status: int, preference: Preference,
    pending: str,
) -> func.HttpResponse:  # fmt: skip
    """`status` when the change is visible; else 202 with the same body (the key included) and what to expect."""
    headers: dict[str, str] = {}
    if preference.applied is not None:
        headers["Preference-Applied"] = preference.applied
    body = {**body, "applied": applied}
    if applied:
        return json_response(body, status, headers)
    location = f"{req.url.split('?', 1)[0].split('/tenants/', 1)[0]}/tenants/{tenant}"
    headers["Location"] = location
    headers["Retry-After"] = str(max(1, math.ceil(queue_poll_seconds() / 6)))
    body["message"] = (
        f"accepted and stored, not applied yet: the task hub applies it when its queue is next polled (at most "
        f"about {queue_poll_seconds():.0f} s on an idle app). {pending} Check with GET {location}."
    )
    return json_response(body, 202, headers)


@bp.route(route="tenants/{tenant}", methods=["PUT"])
@bp.durable_client_input(client_name="client")
@handle_errors
async def put_tenant(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    require_admin(await authenticate(req, client))
    tenant = tenant_from_route(req)
    preference = read_preference(req)
    existing = await read_tenant(client, tenant)
    quota = parse_quota(read_json(req), existing.quota if existing else None)
    if existing is not None and existing.api_key_hash:
        applied = await apply_tenant(client, tenant, quota, None, preference.wait)
        body = {"tenant": tenant, "quota": current_quota_dict(quota), "created": False}
        pending = "Until then the previous quota is in force."
        return answer(req, tenant, body, applied, 200, preference, pending)
    api_key = generate_api_key(tenant)
    applied = await apply_tenant(client, tenant, quota, hash_api_key(api_key), preference.wait)
    body = {"tenant": tenant, "quota": current_quota_dict(quota), "created": True, "apiKey": api_key}
    pending = (
        "Keep this apiKey: it works once the tenant is applied (GET answers 200 with it). Repeating this PUT "
        "before then issues another key, which replaces this one."
    )
    return answer(req, tenant, body, applied, 201, preference, pending)


@bp.route(route="tenants/{tenant}/keys", methods=["POST"])
@bp.durable_client_input(client_name="client")
@handle_errors
async def rotate_tenant_key(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    require_admin(await authenticate(req, client))
    tenant = tenant_from_route(req)
    preference = read_preference(req)
    existing = await read_tenant(client, tenant)
    if existing is None or existing.quota is None:
        raise ApiError(404, "TenantNotFound", f"tenant '{tenant}' does not exist; create it with PUT first")
    api_key = generate_api_key(tenant)
    applied = await apply_tenant(client, tenant, existing.quota, hash_api_key(api_key), preference.wait)
    pending = (
        "Keep this apiKey: it replaces the previous key once applied (GET answers 200 with it); the previous key "
        "works until then. Rotating again before then issues another key, which replaces this one."
    )
    return answer(req, tenant, {"tenant": tenant, "apiKey": api_key}, applied, 200, preference, pending)


@bp.route(route="tenants/{tenant}", methods=["GET"])
@bp.durable_client_input(client_name="client")
@handle_errors
async def get_tenant(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    principal = await authenticate(req, client)
    tenant = tenant_from_route(req)
    state = await read_tenant(client, tenant) if principal.is_admin or principal.tenant == tenant else None
    if state is None or state.quota is None:
        raise ApiError(404, "TenantNotFound", f"tenant '{tenant}' does not exist")
    capacity = await read_capacity(client)
    live = snapshot(capacity, tenant) if capacity is not None else {}
    return json_response(tenant_view(tenant, state, live))


def tenant_view(tenant: str, state: TenantState, live: dict[str, Any]) -> dict[str, Any]:
    assert state.quota is not None
    return {
        "tenant": tenant,
        "quota": current_quota_dict(state.quota),
        "running": {
            "groups": live.get("running_groups", 0),
            "cores": live.get("running_cores", 0.0),
            "memoryGb": live.get("running_memory_gb", 0.0),
        },
        "queued": live.get("queued", 0),
        "usage": {
            "coreSeconds": round(state.core_seconds, 3),
            "gbSeconds": round(state.gb_seconds, 3),
            "tasks": dict(state.task_counts),
        },
        "jobs": len(state.jobs),
    }
