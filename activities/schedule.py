"""The activity a schedule tick submits its job through: the same start path as `POST /api/jobs`.

Why an activity (and not the orchestrator starting the job orchestration itself): job submission registers the
job with the tenant entity, seals secure values and answers a repeated jobId idempotently (`api.jobs.start_job`);
an orchestrator can do none of that with a durable client. An activity runs at least once, so it must be safe to
repeat: the job id is derived from the schedule id and the tick's instant, and a job that already exists under
it is reported as this tick's job without starting anything. The concurrency policy is decided here, from the
live status of the schedule's recent jobs, and a replaced job is cancelled as `POST /api/jobs/{id}/cancel` does.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any, cast

import azure.durable_functions as df

from acibatch import durable_names as names
from acibatch.agentshare import AgentShare, oversize_problems
from acibatch.filespec import STORAGE_SETTINGS
from acibatch.messages.schedule import RunOutcome, RunRequest
from acibatch.naming import job_instance_id
from acibatch.schedules import decide_concurrency, parse_instant, tick_job_id
from acibatch.sealing import SealError, unseal
from acibatch.settings import current as settings
from acibatch.spec import JobSpec
from activities import bp
from api.common import ApiError
from api.jobs import request_cancel, start_job
from api.schedules import running_jobs

log = logging.getLogger(__name__)


def storage_refusal(spec: JobSpec) -> str | None:
    """Why a run cannot start with today's storage settings, which may have changed since the schedule was put:
    without blob storage its files would be silently skipped, and a larger agent request may no longer fit a
    container group (the tenant's quota is the capacity entity's to check, as for every task)."""
    storage = settings().storage
    if spec.moves_files and not storage.enabled:
        return f"the job moves files but blob storage is not configured now: set {STORAGE_SETTINGS}"
    problems = oversize_problems(spec, AgentShare.of(storage), None, "")
    return "; ".join(f"jobSpecification.{problem.path}: {problem.message}" for problem in problems) or None


@bp.activity_trigger(input_name="payload", activity=names.RUN_SCHEDULED_JOB)
@bp.durable_client_input(client_name="client")
async def run_scheduled_job(payload: object, client: df.DurableOrchestrationClient) -> dict[str, Any]:
    """Submit one tick's job, or say why not: a `RunOutcome`."""
    # Typed `object` for the Python worker (see devhost/workerrules.py): the request is parsed here.
    return (await submit_run(RunRequest.parse(cast(Mapping[str, Any], payload)), client)).to_dict()


async def submit_run(run: RunRequest, client: df.DurableOrchestrationClient) -> RunOutcome:
    tenant, schedule_id = run.tenant, run.schedule_id
    job_id = tick_job_id(schedule_id, parse_instant(run.scheduled_for), run.kind)
    submitted = RunOutcome(run.scheduled_for, run.kind, job_id, submitted=True)

    existing = await client.get_status(job_instance_id(tenant, job_id))
    if getattr(existing, "runtime_status", None) is not None:
        # This tick ran before (the activity is repeated after a crash): its job is already there.
        return submitted
    spec = JobSpec.from_dict(run.job)
    refusal = storage_refusal(spec)
    if refusal is not None:  # before the concurrency policy: a run that cannot start must not replace another
        return submitted.refused(refusal)
    others = [other for other in run.recent_jobs if other != job_id]
    decision = decide_concurrency(run.policy, await running_jobs(client, tenant, others))
    if not decision.submit:
        return submitted.refused(decision.reason)
    for replaced in decision.cancel:
        try:
            await request_cancel(client, tenant, replaced)
        except Exception as exc:  # it finished since it was seen running: nothing is left to cancel
            log.info("no cancel for %s of schedule %s: %s", replaced, schedule_id, exc)
    try:
        sealed = run.sealed_secure_env
        secure_env = unseal(settings().signing_keys, sealed) if sealed else {}
    except SealError as error:
        return submitted.refused(f"the schedule's secure env values cannot be opened: {error}")
    spec = spec.model_copy(update={"job_id": job_id, "secure_env": secure_env})
    try:
        await start_job(client, tenant, spec)
    except ApiError as error:  # a job of another spec holds the id (one the tenant submitted by hand)
        return submitted.refused(error.message)
    log.info("schedule %s of %s submitted %s", schedule_id, tenant, job_id)
    return dataclasses.replace(submitted, replaced=tuple(decision.cancel) or None)
