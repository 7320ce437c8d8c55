"""Job API: submit (idempotent on jobId), list, show with task progress, cancel, read a task's log."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from acibatch import durable_names as names
from acibatch.accounts import list_jobs
from acibatch.aci import shared_gateway
from acibatch.agentshare import AgentShare, oversize_problems, runs_agent
from acibatch.callbacks import decode_event_payload
from acibatch.dag import Graph, blocked_tasks
from acibatch.durable_names import TenantOp
from acibatch.entitystate import read_stored
from acibatch.messages.tenant import JobRegistration
from acibatch.models.views import JobAccepted, JobCancelling, JobList, JobView
from acibatch.naming import job_instance_id, new_job_id
from acibatch.plan import JobInput, progress_entity_key
from acibatch.records import JobProgress, JobState, TaskRecord, TaskState, job_state_from_counts
from acibatch.sealing import seal
from acibatch.settings import Settings
from acibatch.settings import current as settings
from acibatch.spec import ID_RULE, JobSpec, JobSpecInvalid, SpecError, parse_job_spec
from api import bp
from api.common import (
    TERMINAL,
    ApiError,
    authenticate,
    authenticate_reading,
    base_url,
    handle_errors,
    json_response,
    query_int,
    read_json,
    read_tenant,
    require_tenant,
    runtime_of,
)
from api.jobfacts import JobFacts, job_status_and_facts
from api.statusreads import InstanceStatus, read_status
from api.tasklogs import LogQuery, stored_log
from api.taskpage import read_page, read_task_run, unrun_view

UPSTREAM_SHOWN = 20  # a reduce over 10,000 tasks lists its first 20 upstream ids (and how many there are)


def _stored_input(status: Any) -> dict[str, Any]:
    # Inputs of instances started by the Python client come back as JSON text (double-encoded).
    data = decode_event_payload(getattr(status, "input_", None))
    return data if isinstance(data, dict) else {}


def keyed_fingerprint(spec: JobSpec) -> str:
    # Keyed, so the stored value says nothing about secure env values even to a brute-force guess.
    key = settings().callback_signing_key.encode()
    return hmac.new(key, spec.fingerprint().encode(), hashlib.sha256).hexdigest()


def job_links(req: func.HttpRequest, job_id: str) -> dict[str, str]:
    root = f"{base_url(req)}/jobs/{job_id}"
    return {"statusUrl": root, "cancelUrl": f"{root}/cancel"}


def _link_fields(links: dict[str, str]) -> dict[str, str]:
    """`job_links` as the view models' field names."""
    return {"status_url": links["statusUrl"], "cancel_url": links["cancelUrl"]}


def job_id_from_route(req: func.HttpRequest) -> str:
    job_id = str(req.route_params.get("jobId", ""))
    # Ids we issue or accept always match the spec's id rule; anything else cannot name a job.
    if not ID_RULE.fullmatch(job_id):
        raise ApiError(404, "JobNotFound", "no such job")
    return job_id


def job_input_for(
    tenant: str, job_id: str, spec: JobSpec, fingerprint: str, signing: Settings, submitted_at: str
) -> JobInput:
    """The job orchestration's input: the spec with its secure values sealed, and what the settings decide for the
    job's whole life, recorded so a settings change never alters a job already running (or replaying)."""
    share = AgentShare.of(signing.storage)
    sealed = seal(signing.callback_signing_key, spec.secure_env) if spec.secure_env else None
    spec_without_secrets = spec.to_dict()
    spec_without_secrets["secureEnv"] = {}
    return JobInput(
        tenant=tenant,
        job_id=job_id,
        spec=spec_without_secrets,
        sealed_secure_env=sealed,
        fingerprint=fingerprint,
        submitted_at=submitted_at,
        poll_seconds=signing.poll_seconds,
        storage=signing.storage_enabled,
        agent_cpu=share.cpu,
        agent_memory_gb=share.memory_gb,
        callback_events=signing.callback_events,
        # Only with BATCH_TASK_WAVES on: a job without it starts every task at once, as older builds do.
        region_groups=signing.max_groups if signing.task_waves else 0,
    )


async def start_job(client: df.DurableOrchestrationClient, tenant: str, spec: JobSpec) -> tuple[str, Any]:
    """Start `spec` as one of `tenant`'s jobs, idempotent on its jobId (a new id when it has none): the job id
    and None when this call started it; the job id and its orchestration status when the same spec was started
    before. A different spec under the same id is a 409. `POST /api/jobs` and schedule ticks both start jobs here.
    """
    job_id = spec.job_id or new_job_id()
    instance = job_instance_id(tenant, job_id)
    fingerprint = keyed_fingerprint(spec)

    existing = await client.get_status(instance)
    if runtime_of(existing) is None:
        submitted_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        job = job_input_for(tenant, job_id, spec, fingerprint, settings(), submitted_at)
        registration = JobRegistration(job_id, job.submitted_at, fingerprint)
        await client.signal_entity(
            df.EntityId(names.TENANT_ENTITY, tenant), TenantOp.REGISTER_JOB, registration.to_dict()
        )
        try:
            await client.start_new(names.JOB_ORCHESTRATOR, instance, job.to_dict())
        except Exception:
            # A concurrent submit of the same jobId won the race; fall through to the idempotency check.
            existing = await client.get_status(instance)
            if runtime_of(existing) is None:
                raise
        else:
            return job_id, None
    stored = _stored_input(existing)
    if stored.get("fingerprint") != fingerprint:
        raise ApiError(
            409,
            "JobIdConflict",
            f"job '{job_id}' already exists with a different spec; resubmit the same spec or use a new jobId",
        )
    return job_id, existing


async def agent_fit_problems(client: df.DurableOrchestrationClient, tenant: str, spec: JobSpec) -> list[SpecError]:
    """Why `spec`'s tasks could never run once the agent's sidecar is added to each group (`acibatch.agentshare`);
    the tenant's quota is read only for a job that runs the agent, so nothing changes while storage is off."""
    share = AgentShare.of(settings().storage)
    if not runs_agent(spec, share):
        return []
    state = await read_tenant(client, tenant)
    return oversize_problems(spec, share, None if state is None else state.quota, tenant)


def invalid_job_spec(errors: list[SpecError]) -> ApiError:
    details = [{"path": error.path, "message": error.message} for error in errors]
    return ApiError(400, "InvalidJobSpec", f"the job spec has {len(details)} error(s); fix them all", details)


@bp.route(route="jobs", methods=["POST"])
@bp.durable_client_input(client_name="client")
@handle_errors
async def submit_job(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    tenant = require_tenant(await authenticate(req, client))
    body = read_json(req)
    try:
        spec = parse_job_spec(body, outbound=settings().outbound, storage_enabled=settings().storage_enabled)
    except JobSpecInvalid as invalid:
        raise invalid_job_spec(invalid.errors) from None
    if oversize := await agent_fit_problems(client, tenant, spec):
        raise invalid_job_spec(oversize)
    job_id, existing = await start_job(client, tenant, spec)
    links = job_links(req, job_id)
    state = JobState.QUEUED
    if existing is not None:
        # The same spec again: answer as for the first submit, with the job's current state, so a client that
        # retries after a lost answer learns where the job stands.
        stored = _stored_input(existing)
        state, _, _ = summarize(existing, await read_progress(client, tenant, job_id), len(_task_ids(stored)))
    accepted = JobAccepted(job_id=job_id, state=state, created=existing is None, **_link_fields(links))
    return json_response(accepted.to_dict(), 202, {"Location": links["statusUrl"]})


@bp.route(route="jobs", methods=["GET"])
@bp.durable_client_input(client_name="client")
@handle_errors
async def list_tenant_jobs(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    # The tenant's state, read to check the key, is the one the answer shows: not read a second time.
    principal, state = await authenticate_reading(req, client)
    require_tenant(principal)
    state_filter = req.params.get("state")
    if state_filter is not None and state_filter not in {str(state) for state in JobState}:
        allowed = ", ".join(str(state) for state in JobState)
        raise ApiError(400, "InvalidQuery", f"query parameter 'state' must be one of {allowed} (omit it for every job)")
    offset = query_int(req, "offset", 0, 0, 10**9)
    limit = query_int(req, "limit", 50, 1, 500)
    page, total = list_jobs(state, state_filter, offset, limit) if state is not None else ([], 0)
    jobs = [{**item, **job_links(req, item["jobId"])} for item in page]
    next_offset = offset + len(page) if offset + len(page) < total else None
    return json_response(JobList(jobs=jobs, total=total, offset=offset, next_offset=next_offset).to_dict())


def _task_ids(job: dict[str, Any]) -> list[str]:
    return [task["id"] for task in job.get("spec", {}).get("tasks", [])]


def summarize(status: Any, progress: JobProgress, task_count: int) -> tuple[JobState, dict[str, int], str | None]:
    """The job's state, per-state task counts and error, from its orchestration status and progress entity."""
    counts = progress.counts()
    runtime = runtime_of(status)
    output = status.output if isinstance(status.output, dict) else {}
    error = output.get("error")
    if runtime == "Completed":
        return JobState(output["state"]), {**counts, **output.get("counts", {})}, error
    if runtime in {"Failed", "Terminated", "Canceled"}:
        state = JobState.FAILED if runtime == "Failed" else JobState.CANCELLED
        return state, counts, error or f"job orchestration {runtime.lower()}"
    # Tasks the job has not started yet are not in the progress entity: they are queued.
    queued = counts[str(TaskState.QUEUED)] + max(0, task_count - progress.total)
    counts = {**counts, str(TaskState.QUEUED): queued}
    return job_state_from_counts(counts, finished=False, cancelled=progress.cancelled), counts, error


def _blocked(graph: Graph | None, progress: JobProgress) -> dict[str, list[str]]:
    """Blocked tasks of a job with dependencies, each with its first unfinished upstream ids (none for others)."""
    if graph is None:
        return {}
    ended = {task_id: progress.task_state(task_id).terminal for task_id in progress.states}
    begun = dict.fromkeys(progress.states, True)
    return {graph.ids[index]: waiting for index, waiting in blocked_tasks(graph, ended, begun).items()}


def _with_workflow_view(
    task: dict[str, Any], progress: JobProgress, blocked: dict[str, list[str]], graph: Graph | None
) -> dict[str, Any]:
    """A task that has not run: Blocked with `blockedBy`, or how it ended without running (Skipped, with why);
    in a job with dependencies every task also lists its upstream ids (the first UPSTREAM_SHOWN)."""
    task_id = task["id"]
    if graph is not None:
        parents = graph.upstream[graph.position[task_id]] if task_id in graph.position else ()
        upstream = [graph.ids[parent] for parent in parents[:UPSTREAM_SHOWN]]
        task = {**task, "upstream": upstream, "upstreamCount": len(parents)}
    if task_id in blocked and task["state"] == str(TaskState.QUEUED):
        return {**task, "state": str(TaskState.BLOCKED), "blockedBy": blocked[task_id]}
    return unrun_view(task, progress)


async def not_started(
    client: df.DurableOrchestrationClient, tenant: str, job_id: str, record: TaskRecord, code: str, missing: str
) -> ApiError:
    """The 404 for a task without an attempt, saying `missing` (what it has none of). A task that ended without one
    says how and why: its own record (cancelled as it began) or, when it has none, the progress entity
    (`JobProgress.ended_unrun`: a stopping job's chunk never started it, a workflow skipped it). "Has not started
    yet" would have the caller wait for a task that never will."""
    ended = (record.state, record.error) if record.state.terminal else None
    if record.state is TaskState.QUEUED:
        ended = (await read_progress(client, tenant, job_id)).ended_unrun(record.id)
    if ended is None:
        return ApiError(404, code, f"task '{record.id}' has not started yet; {missing}")
    state, reason = ended
    why = f" ({reason})" if reason else ""
    return ApiError(404, code, f"task '{record.id}' was never started: it ended {state}{why}; {missing}")


async def read_progress(client: df.DurableOrchestrationClient, tenant: str, job_id: str) -> JobProgress:
    entity = df.EntityId(names.PROGRESS_ENTITY, progress_entity_key(tenant, job_id))
    return JobProgress.from_dict(await read_stored(client, entity))


async def find_task(
    client: df.DurableOrchestrationClient, tenant: str, job_id: str, task_id: str
) -> tuple[TaskRecord, bool]:
    """A task of one of the tenant's jobs, as `read_task_run` gives it; 404 for an unknown job or task."""
    _, facts = await find_job_facts(client, tenant, job_id)
    if task_id not in facts.task_ids:
        raise ApiError(404, "TaskNotFound", f"job '{job_id}' has no task '{task_id[:80]}'")
    return await read_task_run(client, tenant, job_id, task_id)


def _no_such_job(job_id: str) -> ApiError:
    return ApiError(404, "JobNotFound", f"job '{job_id}' does not exist")


async def find_job(client: df.DurableOrchestrationClient, tenant: str, job_id: str) -> InstanceStatus:
    """The job orchestration's status without its input; 404 for a job the tenant does not have."""
    status = await read_status(client, job_instance_id(tenant, job_id))
    if status is None or runtime_of(status) is None:
        raise _no_such_job(job_id)
    return status


async def find_job_facts(
    client: df.DurableOrchestrationClient, tenant: str, job_id: str
) -> tuple[InstanceStatus, JobFacts]:
    """The job's status (without its input) and what the API needs of its input (`api.jobfacts`); 404 as above."""
    found = await job_status_and_facts(client, tenant, job_id)
    if found is None or runtime_of(found[0]) is None:
        raise _no_such_job(job_id)
    return found


@bp.route(route="jobs/{jobId}", methods=["GET"])
@bp.durable_client_input(client_name="client")
@handle_errors
async def get_job(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    tenant = require_tenant(await authenticate(req, client))
    job_id = job_id_from_route(req)
    offset = query_int(req, "offset", 0, 0, 10**6)
    limit = query_int(req, "limit", 100, 0, 1000)
    # Read only once the key is checked: nothing of the job is touched, or cached, for a caller who may not see it.
    # The status and the progress entity are read side by side: each read is a wait on the host.
    (status, facts), progress = await asyncio.gather(
        find_job_facts(client, tenant, job_id), read_progress(client, tenant, job_id)
    )
    task_ids = facts.task_ids
    state, counts, error = summarize(status, progress, len(task_ids))
    output = status.output if isinstance(status.output, dict) else {}

    page = list(task_ids[offset : offset + limit])
    records = await read_page(client, (tenant, job_id), status, progress, page)
    tasks = [record.public() for record in records]
    graph = facts.graph
    blocked = _blocked(graph, progress) if runtime_of(status) not in TERMINAL else {}
    if blocked:
        counts = {**counts, str(TaskState.BLOCKED): len(blocked)}
        counts[str(TaskState.QUEUED)] = max(0, counts[str(TaskState.QUEUED)] - len(blocked))
    tasks = [_with_workflow_view(task, progress, blocked, graph) for task in tasks]
    custom = status.custom_status if isinstance(status.custom_status, dict) else {}
    view = JobView(
        job_id=job_id,
        tenant=tenant,
        state=state,
        cancel_requested=progress.cancelled,
        created_at=facts.submitted_at,
        started_at=output.get("startedAt") or custom.get("startedAt"),
        finished_at=output.get("finishedAt"),
        error=error,
        task_count=len(task_ids),
        counts=counts,
        tasks=tasks,
        offset=offset,
        # The next page's offset; null when this page holds the last task, and when limit=0 asked for counts only
        # (an offset equal to this one would send a paging client round forever).
        next_offset=offset + len(page) if page and offset + len(page) < len(task_ids) else None,
        **_link_fields(job_links(req, job_id)),
    )
    body = view.to_dict()
    return json_response(body)


async def request_cancel(client: df.DurableOrchestrationClient, tenant: str, job_id: str) -> None:
    """Ask a running job to stop (`POST /api/jobs/{id}/cancel`, and a Replace schedule's next tick)."""
    await client.raise_event(
        job_instance_id(tenant, job_id), names.EVENT_CANCEL, {"requestedAt": datetime.now(UTC).isoformat()}
    )


@bp.route(route="jobs/{jobId}/cancel", methods=["POST"])
@bp.durable_client_input(client_name="client")
@handle_errors
async def cancel_job(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    tenant = require_tenant(await authenticate(req, client))
    job_id = job_id_from_route(req)
    status = await find_job(client, tenant, job_id)
    if runtime_of(status) in TERMINAL:
        output = status.output if isinstance(status.output, dict) else {}
        raise ApiError(
            409,
            "JobFinished",
            f"job '{job_id}' already finished ({output.get('state', 'unknown')}); nothing to cancel",
        )
    await request_cancel(client, tenant, job_id)
    links = job_links(req, job_id)
    cancelling = JobCancelling(job_id=job_id, status_url=links["statusUrl"], cancel_url=links["cancelUrl"])
    return json_response(cancelling.to_dict(), 202)


@bp.route(route="jobs/{jobId}/tasks/{taskId}/logs", methods=["GET"])
@bp.durable_client_input(client_name="client")
@handle_errors
async def task_logs(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    tenant = require_tenant(await authenticate(req, client))
    job_id = job_id_from_route(req)
    task_id = str(req.route_params.get("taskId", ""))
    query = LogQuery.parse(req)
    tail = query.tail
    record, agent = await find_task(client, tenant, job_id, task_id)
    if record.attempt < 1:
        raise await not_started(client, tenant, job_id, record, "LogNotAvailable", "no log exists")
    if agent and settings().storage_enabled:
        # The agent streamed the whole log to blob storage; ACI's log (below) is only for tasks without it.
        return await stored_log(req, query, tenant, job_id, record)
    if record.group_name is None and record.log_tail is None:
        raise ApiError(404, "LogNotAvailable", f"no log was kept for task '{task_id}'")
    content, source = None, "kept"
    if not record.state.terminal and record.group_name:
        config = settings()
        gateway = shared_gateway(
            config.subscription_id, config.aci_endpoint, config.resource_group, config.aci_endpoint_token
        )
        content = await asyncio.to_thread(gateway.logs, record.group_name, tail)
        source = "aci"
    if content is None:
        content, source = record.log_tail or "", "kept"
        if tail:
            content = "\n".join(content.splitlines()[-tail:])
    body = {
        "jobId": job_id,
        "taskId": task_id,
        "groupName": record.group_name,
        "source": source,
        "content": content,
    }
    return json_response(body)
