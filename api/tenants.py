"""Tenant administration: create/update quotas, rotate keys, show quota, running work and usage."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from acibatch import durable_names as names
from acibatch.apikeys import generate_api_key, hash_api_key
from acibatch.entitystate import read_stored
from acibatch.naming import validate_tenant_id
from acibatch.tenancy import CapacityState, Quota, TenantState, snapshot
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
APPLY_TIMEOUT_SECONDS = 30.0


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


async def wait_until(check: Callable[[], Any], what: str) -> None:
    """Entity signals apply asynchronously; wait until the change is visible so the caller can rely on it."""
    deadline = asyncio.get_running_loop().time() + APPLY_TIMEOUT_SECONDS
    delay = 0.02
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise ApiError(
                503,
                "NotApplied",
                f"{what} was accepted but not applied within {APPLY_TIMEOUT_SECONDS:.0f} s; retry the request",
            )
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.5)


async def read_capacity(client: df.DurableOrchestrationClient) -> CapacityState | None:
    stored = await read_stored(client, CAPACITY)
    return CapacityState.from_dict(stored) if stored else None


async def apply_tenant(client: df.DurableOrchestrationClient, tenant: str, quota: Quota, key_hash: str | None) -> None:
    """Send the quota (and new key hash) to the tenant and capacity entities and wait until both hold it."""
    change: dict[str, Any] = {"quota": current_quota_dict(quota)}
    if key_hash is not None:
        change["apiKeyHash"] = key_hash
    await client.signal_entity(df.EntityId(names.TENANT_ENTITY, tenant), "configure", change)
    await client.signal_entity(CAPACITY, "set_quota", {"tenant": tenant, "quota": current_quota_dict(quota)})

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

    await wait_until(applied, f"the change to tenant '{tenant}'")


@bp.route(route="tenants/{tenant}", methods=["PUT"])
@bp.durable_client_input(client_name="client")
@handle_errors
async def put_tenant(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    require_admin(await authenticate(req, client))
    tenant = tenant_from_route(req)
    existing = await read_tenant(client, tenant)
    quota = parse_quota(read_json(req), existing.quota if existing else None)
    if existing is not None and existing.api_key_hash:
        await apply_tenant(client, tenant, quota, None)
        return json_response({"tenant": tenant, "quota": current_quota_dict(quota), "created": False})
    api_key = generate_api_key(tenant)
    await apply_tenant(client, tenant, quota, hash_api_key(api_key))
    body = {"tenant": tenant, "quota": current_quota_dict(quota), "created": True, "apiKey": api_key}
    return json_response(body, 201)


@bp.route(route="tenants/{tenant}/keys", methods=["POST"])
@bp.durable_client_input(client_name="client")
@handle_errors
async def rotate_tenant_key(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    require_admin(await authenticate(req, client))
    tenant = tenant_from_route(req)
    existing = await read_tenant(client, tenant)
    if existing is None or existing.quota is None:
        raise ApiError(404, "TenantNotFound", f"tenant '{tenant}' does not exist; create it with PUT first")
    api_key = generate_api_key(tenant)
    await apply_tenant(client, tenant, existing.quota, hash_api_key(api_key))
    return json_response({"tenant": tenant, "apiKey": api_key})


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
