"""Cheap reads for the dashboard (and any poller): a job's task states as one string, pages of tasks by state, one
task, the tenant's jobs with their counts, and tenants with their live use.

Every read here answers with an `ETag` and honours `If-None-Match` with a 304, so a page that polls every few
seconds moves a body only when something changed. Authorization is the API's: a tenant key reads only its own
tenant's jobs (another tenant's job is 404, as in `api.jobs`), the admin key reads tenants.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import azure.durable_functions as df
import azure.functions as func

from acibatch.accounts import list_jobs
from acibatch.naming import validate_tenant_id
from acibatch.records import TaskState
from acibatch.spec import ID_RULE
from acibatch.tenancy import CapacityState, snapshot
from api import bp
from api.common import (
    ApiError,
    Principal,
    authenticate,
    authenticate_reading,
    handle_errors,
    json_response,
    query_int,
    read_tenant,
    require_tenant,
)
from api.dashboard_data import etag_matches, etag_of, ids_in_state, state_string, submitted_since
from api.jobs import find_job_facts, job_id_from_route, read_progress, summarize
from api.statusreads import InstanceStatus
from api.taskpage import read_page, read_task, unrun_view
from api.tenants import read_capacity, tenant_view

READS_IN_PARALLEL = 16
MAX_UNIX_SECONDS = 10**11  # the year 5138: past any job's submission time
T = TypeVar("T")


def conditional_json(req: func.HttpRequest, body: Any) -> func.HttpResponse:
    """200 with the body and its ETag, or 304 with no body when the caller already holds this version."""
    etag = etag_of(body)
    # no-cache: a browser may keep the body but must ask again (with If-None-Match) before each use.
    headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
    if etag_matches(req.headers.get("If-None-Match"), etag):
        return func.HttpResponse(status_code=304, headers=headers)
    return json_response(body, headers=headers)


def _state_query(req: func.HttpRequest) -> TaskState | None:
    """`?state=`: tasks and jobs share the five state names (JobState is TaskState)."""
    raw = req.params.get("state")
    if raw is None:
        return None
    names = [str(state) for state in TaskState]
    if raw not in names:
        raise ApiError(400, "InvalidQuery", f"query parameter 'state' must be one of {', '.join(names)} (or omitted)")
    return TaskState(raw)


async def _job_status_and_ids(
    client: df.DurableOrchestrationClient, tenant: str, job_id: str
) -> tuple[InstanceStatus, tuple[str, ...]]:
    # The job's status without its input, and its task ids kept per worker (`api.jobfacts`): a grid poll of a
    # 10,000-task job must not move and decode the job's whole input each time.
    status, facts = await find_job_facts(client, tenant, job_id)
    return status, facts.task_ids


def _iso(value: Any) -> str | None:
    return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%SZ")


@bp.route(route="jobs/{jobId}/grid", methods=["GET"])
@bp.durable_client_input(client_name="client")
@handle_errors
async def job_grid(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    tenant = require_tenant(await authenticate(req, client))
    job_id = job_id_from_route(req)
    status, task_ids = await _job_status_and_ids(client, tenant, job_id)
    progress = await read_progress(client, tenant, job_id)
    state, counts, error = summarize(status, progress, len(task_ids))
    output = status.output if isinstance(status.output, dict) else {}
    custom = status.custom_status if isinstance(status.custom_status, dict) else {}
    body = {
        "jobId": job_id,
        "state": str(state),
        "cancelRequested": progress.cancelled,
        "createdAt": _iso(getattr(status, "created_time", None)),
        "startedAt": output.get("startedAt") or custom.get("startedAt"),
        "finishedAt": output.get("finishedAt"),
        "error": error,
        "taskCount": len(task_ids),
        "counts": counts,
        "states": state_string(task_ids, progress),
    }
    return conditional_json(req, body)


@bp.route(route="jobs/{jobId}/taskids", methods=["GET"])
@bp.durable_client_input(client_name="client")
@handle_errors
async def job_task_ids(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    tenant = require_tenant(await authenticate(req, client))
    job_id = job_id_from_route(req)
    _, task_ids = await _job_status_and_ids(client, tenant, job_id)
    # The ids never change for a job, so after the first read a page answers 304 and keeps its copy.
    return conditional_json(req, {"jobId": job_id, "taskIds": list(task_ids)})


@bp.route(route="jobs/{jobId}/tasks", methods=["GET"])
@bp.durable_client_input(client_name="client")
@handle_errors
async def job_tasks(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    tenant = require_tenant(await authenticate(req, client))
    job_id = job_id_from_route(req)
    wanted = _state_query(req)
    offset = query_int(req, "offset", 0, 0, 10**6)
    limit = query_int(req, "limit", 50, 1, 200)
    status, task_ids = await _job_status_and_ids(client, tenant, job_id)
    progress = await read_progress(client, tenant, job_id)
    # The filter uses the progress entity's letters, so only the page's tasks are read, however large the job;
    # of those, only tasks in flight (`api.taskpage`).
    matching = ids_in_state(task_ids, state_string(task_ids, progress), wanted)
    page = matching[offset : offset + limit]
    records = await read_page(client, (tenant, job_id), status, progress, page)
    tasks = [unrun_view(record.public(), progress) for record in records]
    next_offset = offset + len(page) if page and offset + len(page) < len(matching) else None
    body = {"jobId": job_id, "tasks": tasks, "total": len(matching), "offset": offset, "nextOffset": next_offset}
    return conditional_json(req, body)


@bp.route(route="jobs/{jobId}/tasks/{taskId}", methods=["GET"])
@bp.durable_client_input(client_name="client")
@handle_errors
async def job_task(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    tenant = require_tenant(await authenticate(req, client))
    job_id = job_id_from_route(req)
    task_id = str(req.route_params.get("taskId", ""))
    _, task_ids = await _job_status_and_ids(client, tenant, job_id)
    if not ID_RULE.fullmatch(task_id) or task_id not in task_ids:
        raise ApiError(404, "TaskNotFound", f"job '{job_id}' has no task '{task_id[:80]}'")
    record = await read_task(client, tenant, job_id, task_id)
    task = record.public()
    if record.state is TaskState.QUEUED:  # or ended without ever starting, which only the progress entity knows
        task = unrun_view(task, await read_progress(client, tenant, job_id))
    body = {"jobId": job_id, "index": task_ids.index(task_id), **task}
    return conditional_json(req, body)


async def _map_limited(read: Callable[[str], Awaitable[T]], keys: list[str]) -> list[T]:
    """`read` of every key, at most READS_IN_PARALLEL at a time, in the keys' order."""
    semaphore = asyncio.Semaphore(READS_IN_PARALLEL)

    async def one(key: str) -> T:
        async with semaphore:
            return await read(key)

    return list(await asyncio.gather(*(one(key) for key in keys)))


@bp.route(route="dashboard/jobs", methods=["GET"])
@bp.durable_client_input(client_name="client")
@handle_errors
async def dashboard_jobs(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    # The tenant's state, read to check the key, is the one the answer shows: not read a second time.
    principal, state = await authenticate_reading(req, client)
    tenant = require_tenant(principal)
    wanted = _state_query(req)
    # Unix seconds: a plain integer, as every query number of this API is.
    since_seconds = query_int(req, "since", 0, 0, MAX_UNIX_SECONDS)
    since = datetime.fromtimestamp(since_seconds, UTC) if since_seconds else None
    offset = query_int(req, "offset", 0, 0, 10**9)
    limit = query_int(req, "limit", 20, 1, 100)
    everything, _ = list_jobs(state, None if wanted is None else str(wanted), 0, 10**9) if state else ([], 0)
    matching = submitted_since(everything, since)
    page = matching[offset : offset + limit]
    progresses = await _map_limited(
        lambda job_id: read_progress(client, tenant, job_id), [str(job["jobId"]) for job in page]
    )
    jobs = [
        {**job, "taskCount": progress.total, "counts": progress.counts()}
        for job, progress in zip(page, progresses, strict=True)
    ]
    next_offset = offset + len(page) if offset + len(page) < len(matching) else None
    body = {"jobs": jobs, "total": len(matching), "offset": offset, "nextOffset": next_offset}
    return conditional_json(req, body)


def _tenant_names(capacity: CapacityState | None, principal: Principal) -> list[str]:
    if principal.tenant is not None:
        return [principal.tenant]  # a tenant sees itself only
    # The capacity entity holds every tenant's quota: the one place that lists them all.
    return sorted(capacity.quotas) if capacity is not None else []


@bp.route(route="dashboard/tenants", methods=["GET"])
@bp.durable_client_input(client_name="client")
@handle_errors
async def dashboard_tenants(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    principal = await authenticate(req, client)
    offset = query_int(req, "offset", 0, 0, 10**6)
    limit = query_int(req, "limit", 50, 1, 200)
    capacity = await read_capacity(client)
    names = _tenant_names(capacity, principal)
    page = [name for name in names[offset : offset + limit] if validate_tenant_id(name) is None]
    states = await _map_limited(lambda name: read_tenant(client, name), page)
    tenants = [
        tenant_view(name, state, snapshot(capacity, name) if capacity is not None else {})
        for name, state in zip(page, states, strict=True)
        if state is not None and state.quota is not None
    ]
    next_offset = offset + len(page) if offset + len(page) < len(names) else None
    body = {"tenants": tenants, "total": len(names), "offset": offset, "nextOffset": next_offset}
    return conditional_json(req, body)
