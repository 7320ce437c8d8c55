"""Schedule API: create or change (PUT), list, show, suspend, resume, trigger (run now) and delete a tenant's job
schedules. Tenant keys only, as for jobs; a tenant's schedules live under its own entity keys and instance ids,
so another tenant's are 404.

Changes are signals to the schedule entity: each answer waits until the entity holds the change (as tenant
changes do, up to the task hub's queue poll interval + 20 s), then wakes the schedule's orchestration so the
change takes effect at once; 202 with `applied: false` when the change is stored but not visible yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from acibatch import durable_names as names
from acibatch.durable_names import ScheduleIndexOp, ScheduleOp
from acibatch.entitystate import read_stored
from acibatch.messages.schedule import ChangeAt, ScheduleChange, ScheduleDelete, SchedulePut, stamped
from acibatch.naming import job_instance_id
from acibatch.schedules import (
    MAX_DEFINITION_BYTES,
    MAX_PENDING_TRIGGERS,
    NEXT_RUNS_SHOWN,
    SCHEDULE_ID_RULE,
    RunKind,
    ScheduleSpecInvalid,
    ScheduleState,
    definition_size,
    parse_schedule_spec,
    schedule_input,
    schedule_instance_id,
    schedule_key,
    tick_job_id,
    utc_iso,
)
from acibatch.sealing import seal
from acibatch.settings import current as settings
from acibatch.spec import SpecError
from api import bp
from api.common import (
    TERMINAL,
    ApiError,
    authenticate,
    base_url,
    found_or_404,
    handle_errors,
    json_response,
    read_json,
    require_tenant,
    runtime_of,
)
from api.jobs import agent_fit_problems
from api.tenants import default_wait_seconds, wait_until

READS_IN_PARALLEL = 16


async def running_jobs(client: df.DurableOrchestrationClient, tenant: str, job_ids: list[str]) -> list[str]:
    """The jobs among `job_ids` whose orchestration has not finished, in the given order."""
    semaphore = asyncio.Semaphore(READS_IN_PARALLEL)

    async def is_running(job_id: str) -> bool:
        async with semaphore:
            runtime = runtime_of(await client.get_status(job_instance_id(tenant, job_id)))
        return runtime is not None and runtime not in TERMINAL

    flags = await asyncio.gather(*(is_running(job_id) for job_id in job_ids))
    return [job_id for job_id, running in zip(job_ids, flags, strict=True) if running]


def schedule_id_from_route(req: func.HttpRequest, *, creating: bool = False) -> str:
    schedule_id = str(req.route_params.get("scheduleId", ""))
    if not SCHEDULE_ID_RULE.fullmatch(schedule_id):
        if creating:
            raise ApiError(
                400,
                "InvalidScheduleId",
                f"schedule id '{schedule_id[:80]}' must be 1-39 letters, digits, '-' or '_', starting with a letter "
                "or digit (no '.': each run's job id is '<scheduleId>.<instant>')",
            )
        raise ApiError(404, "ScheduleNotFound", "no such schedule")
    return schedule_id


def entity_of(tenant: str, schedule_id: str) -> df.EntityId:
    return df.EntityId(names.SCHEDULE_ENTITY, schedule_key(tenant, schedule_id))


async def read_schedule(client: df.DurableOrchestrationClient, tenant: str, schedule_id: str) -> ScheduleState:
    return ScheduleState.from_dict(await read_stored(client, entity_of(tenant, schedule_id)))


async def find_schedule(client: df.DurableOrchestrationClient, tenant: str, schedule_id: str) -> ScheduleState:
    message = f"schedule '{schedule_id}' does not exist"
    state = read_schedule(client, tenant, schedule_id)
    return await found_or_404(state, lambda found: found.exists, "ScheduleNotFound", message)


def now_utc() -> datetime:
    return datetime.now(UTC)


async def change(
    client: df.DurableOrchestrationClient, tenant: str, schedule_id: str, operation: ScheduleOp, message: ScheduleChange
) -> bool:
    """Signal `operation` to the schedule entity; whether the entity holds it within the default wait."""
    version = uuid.uuid4().hex
    await client.signal_entity(entity_of(tenant, schedule_id), operation, stamped(message, version).to_dict())

    async def applied() -> bool:
        return (await read_schedule(client, tenant, schedule_id)).version == version

    return await wait_until(applied, default_wait_seconds())


async def wake(client: df.DurableOrchestrationClient, tenant: str, schedule_id: str) -> None:
    """Start the schedule's orchestration if it is not running, else tell it the schedule changed."""
    instance = schedule_instance_id(tenant, schedule_id)
    if runtime_of(await client.get_status(instance)) not in (None, *TERMINAL):
        await client.raise_event(instance, names.EVENT_SCHEDULE_CHANGED, {"at": utc_iso(now_utc())})
        return
    try:
        await client.start_new(
            names.SCHEDULE_ORCHESTRATOR, instance, schedule_input(tenant, schedule_id, now_utc().isoformat())
        )
    except Exception:
        # Another request started it meanwhile: it reads the entity when it starts, so nothing is lost.
        if runtime_of(await client.get_status(instance)) in (None, *TERMINAL):
            raise


async def view(
    req: func.HttpRequest, client: df.DurableOrchestrationClient, tenant: str, state: ScheduleState
) -> dict[str, Any]:
    """The schedule as `GET /api/schedules/{id}` shows it: the definition as sent (secure values hidden), the
    next runs in its time zone (none while suspended), what it did last and the jobs of it still running."""
    spec = state.spec()
    zone = spec.recurrence.zone
    next_runs = [] if state.suspended else spec.recurrence.fire_times(now_utc(), NEXT_RUNS_SHOWN)
    status = await client.get_status(schedule_instance_id(tenant, state.schedule_id))
    active = await running_jobs(client, tenant, state.recent_jobs)
    jobs_root = f"{base_url(req)}/jobs"
    return {
        "scheduleId": state.schedule_id,
        **spec.public(),
        "suspended": state.suspended,
        "timeZone": spec.recurrence.time_zone,
        "nextRuns": [moment.astimezone(zone).isoformat() for moment in next_runs],
        "lastRun": state.last_run,
        "lastSkip": state.last_skip,
        "activeJobs": [{"jobId": job_id, "statusUrl": f"{jobs_root}/{job_id}"} for job_id in active],
        "recentJobs": list(state.recent_jobs),
        "pendingTriggers": len(state.triggers),
        "counts": dict(state.counts),
        "createdAt": state.created_at,
        "updatedAt": state.updated_at,
        "orchestration": runtime_of(status),
    }


async def answer(
    req: func.HttpRequest,
    client: df.DurableOrchestrationClient,
    tenant: str,
    schedule_id: str,
    applied: bool,
    status: int,
    extra: dict[str, Any] | None = None,
) -> func.HttpResponse:
    state = await read_schedule(client, tenant, schedule_id)
    body = {**(await view(req, client, tenant, state) if state.exists else {"scheduleId": schedule_id})}
    body.update(extra or {})
    body["applied"] = applied
    if applied:
        return json_response(body, status)
    body["message"] = (
        "accepted and stored, not applied yet: the task hub applies it when its queue is next polled; "
        f"check with GET {base_url(req)}/schedules/{schedule_id}"
    )
    return json_response(body, 202, {"Location": f"{base_url(req)}/schedules/{schedule_id}"})


def invalid_schedule(errors: list[SpecError]) -> ApiError:
    details = [{"path": error.path, "message": error.message} for error in errors]
    return ApiError(400, "InvalidSchedule", f"the schedule has {len(details)} error(s); fix them all", details)


@bp.route(route="schedules/{scheduleId}", methods=["PUT"])
@bp.durable_client_input(client_name="client")
@handle_errors
async def put_schedule(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    tenant = require_tenant(await authenticate(req, client))
    schedule_id = schedule_id_from_route(req, creating=True)
    body = read_json(req)
    existing = await read_schedule(client, tenant, schedule_id)
    now = now_utc()
    created_at = datetime.fromisoformat(existing.created_at) if existing.exists and existing.created_at else now
    config = settings()
    try:
        spec = parse_schedule_spec(
            body, created_at=created_at, outbound=config.outbound, storage_enabled=config.storage_enabled
        )
    except ScheduleSpecInvalid as invalid:
        raise invalid_schedule(invalid.errors) from None
    if oversize := await agent_fit_problems(client, tenant, spec.job):
        raise invalid_schedule([SpecError(f"jobSpecification.{error.path}", error.message) for error in oversize])
    if (size := definition_size(spec)) > MAX_DEFINITION_BYTES:
        raise ApiError(
            400,
            "ScheduleTooLarge",
            f"the schedule's job spec takes {size} bytes stored, over the {MAX_DEFINITION_BYTES} a schedule can keep "
            "in Durable state: use fewer or smaller tasks, or submit such jobs with POST /api/jobs",
        )
    sealed = seal(settings().callback_signing_key, spec.job.secure_env) if spec.job.secure_env else None
    put = SchedulePut(tenant, schedule_id, spec.to_dict(), sealed, now.isoformat())
    applied = await change(client, tenant, schedule_id, ScheduleOp.PUT, put)
    await client.signal_entity(df.EntityId(names.SCHEDULE_INDEX_ENTITY, tenant), ScheduleIndexOp.ADD, schedule_id)
    await wake(client, tenant, schedule_id)
    return await answer(req, client, tenant, schedule_id, applied, 200 if existing.exists else 201)


@bp.route(route="schedules", methods=["GET"])
@bp.durable_client_input(client_name="client")
@handle_errors
async def list_schedules(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    tenant = require_tenant(await authenticate(req, client))
    ids = await read_stored(client, df.EntityId(names.SCHEDULE_INDEX_ENTITY, tenant)) or []
    semaphore = asyncio.Semaphore(READS_IN_PARALLEL)

    async def one(schedule_id: str) -> ScheduleState:
        async with semaphore:
            return await read_schedule(client, tenant, schedule_id)

    states = await asyncio.gather(*(one(str(schedule_id)) for schedule_id in ids))
    now = now_utc()
    schedules = []
    for state in states:
        if not state.exists:
            continue
        spec = state.spec()
        upcoming = [] if state.suspended else spec.recurrence.fire_times(now, 1)
        schedules.append(
            {
                "scheduleId": state.schedule_id,
                "schedule": spec.request.get("schedule"),
                "suspended": state.suspended,
                "nextRun": upcoming[0].astimezone(spec.recurrence.zone).isoformat() if upcoming else None,
                "lastRun": state.last_run,
                "counts": dict(state.counts),
            }
        )
    return json_response({"schedules": schedules, "total": len(schedules)})


@bp.route(route="schedules/{scheduleId}", methods=["GET"])
@bp.durable_client_input(client_name="client")
@handle_errors
async def get_schedule(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    tenant = require_tenant(await authenticate(req, client))
    schedule_id = schedule_id_from_route(req)
    state = await find_schedule(client, tenant, schedule_id)
    return json_response(await view(req, client, tenant, state))


def _register_suspend_route(operation: ScheduleOp) -> None:
    """`POST /schedules/{id}/suspend` and `.../resume`: one handler, registered once per operation (the Functions
    host names each function after its handler, hence the rename)."""

    async def set_suspended(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
        tenant = require_tenant(await authenticate(req, client))
        schedule_id = schedule_id_from_route(req)
        await find_schedule(client, tenant, schedule_id)
        applied = await change(client, tenant, schedule_id, operation, ChangeAt(now_utc().isoformat()))
        await wake(client, tenant, schedule_id)
        return await answer(req, client, tenant, schedule_id, applied, 200)

    set_suspended.__name__ = set_suspended.__qualname__ = f"{operation}_schedule"
    route = bp.route(route=f"schedules/{{scheduleId}}/{operation}", methods=["POST"])
    route(bp.durable_client_input(client_name="client")(handle_errors(set_suspended)))


for _operation in (ScheduleOp.SUSPEND, ScheduleOp.RESUME):
    _register_suspend_route(_operation)


@bp.route(route="schedules/{scheduleId}/trigger", methods=["POST"])
@bp.durable_client_input(client_name="client")
@handle_errors
async def trigger_schedule(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Run the job now (even while suspended), under the schedule's concurrency policy."""
    tenant = require_tenant(await authenticate(req, client))
    schedule_id = schedule_id_from_route(req)
    state = await find_schedule(client, tenant, schedule_id)
    at = now_utc().replace(microsecond=0)
    if len(state.triggers) >= MAX_PENDING_TRIGGERS and utc_iso(at) not in state.triggers:
        raise ApiError(
            409,
            "TooManyTriggers",
            f"schedule '{schedule_id}' already has {MAX_PENDING_TRIGGERS} manual runs waiting to start; "
            "try again once they have started",
        )
    applied = await change(client, tenant, schedule_id, ScheduleOp.TRIGGER, ChangeAt(utc_iso(at)))
    await wake(client, tenant, schedule_id)
    job_id = tick_job_id(schedule_id, at, RunKind.MANUAL)
    extra = {"jobId": job_id, "scheduledFor": utc_iso(at), "statusUrl": f"{base_url(req)}/jobs/{job_id}"}
    return await answer(req, client, tenant, schedule_id, applied, 202, extra)


@bp.route(route="schedules/{scheduleId}", methods=["DELETE"])
@bp.durable_client_input(client_name="client")
@handle_errors
async def delete_schedule(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Stop the schedule; the jobs it started are left alone."""
    tenant = require_tenant(await authenticate(req, client))
    schedule_id = schedule_id_from_route(req)
    await find_schedule(client, tenant, schedule_id)
    applied = await change(client, tenant, schedule_id, ScheduleOp.DELETE, ScheduleDelete())
    await client.signal_entity(df.EntityId(names.SCHEDULE_INDEX_ENTITY, tenant), ScheduleIndexOp.REMOVE, schedule_id)
    instance = schedule_instance_id(tenant, schedule_id)
    if runtime_of(await client.get_status(instance)) not in (None, *TERMINAL):
        # It may have ended meanwhile; if termination fails, its next wake-up finds the schedule deleted and returns.
        with contextlib.suppress(Exception):
            await client.terminate(instance, "the schedule was deleted")

    async def stopped() -> bool:
        return runtime_of(await client.get_status(instance)) in (None, *TERMINAL)

    # A PUT right after must find the orchestration stopped, or it would wake one about to be terminated.
    stopped_in_time = await wait_until(stopped, default_wait_seconds())
    body = {"scheduleId": schedule_id, "deleted": True, "applied": applied and stopped_in_time}
    return json_response(body, 200 if applied and stopped_in_time else 202)
