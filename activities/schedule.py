"""The activity a schedule tick submits its job through: the same start path as `POST /api/jobs`.

Why an activity (and not the orchestrator starting the job orchestration itself): job submission registers the
job with the tenant entity, seals secure values and answers a repeated jobId idempotently (`api.jobs.start_job`);
an orchestrator can do none of that with a durable client. An activity runs at least once, so it must be safe to
repeat: the job id is derived from the schedule id and the tick's instant, and a job that already exists under
it is reported as this tick's job without starting anything. The concurrency policy is decided here, from the
live status of the schedule's recent jobs, and a replaced job is cancelled as `POST /api/jobs/{id}/cancel` does.
"""

from __future__ import annotations

import logging
from typing import Any, cast

import azure.durable_functions as df

from acibatch import durable_names as names
from acibatch.naming import job_instance_id
from acibatch.schedules import ConcurrencyPolicy, RunKind, decide_concurrency, parse_instant, tick_job_id
from acibatch.sealing import SealError, unseal
from acibatch.settings import current as settings
from acibatch.spec import JobSpec
from activities import bp
from api.common import ApiError
from api.jobs import request_cancel, start_job
from api.schedules import running_jobs

log = logging.getLogger(__name__)


@bp.activity_trigger(input_name="payload", activity=names.RUN_SCHEDULED_JOB)
@bp.durable_client_input(client_name="client")
async def run_scheduled_job(payload: object, client: df.DurableOrchestrationClient) -> dict[str, Any]:
    """Submit one tick's job, or say why not: `{scheduledFor, kind, jobId, submitted, reason?, replaced?}`."""
    payload = cast(dict[str, Any], payload)  # typed `object` for the Python worker: see devhost/workerrules.py
    tenant, schedule_id = payload["tenant"], payload["scheduleId"]
    kind = RunKind(payload["kind"])
    job_id = tick_job_id(schedule_id, parse_instant(payload["scheduledFor"]), kind)
    outcome: dict[str, Any] = {"scheduledFor": payload["scheduledFor"], "kind": str(kind), "jobId": job_id}

    existing = await client.get_status(job_instance_id(tenant, job_id))
    if getattr(existing, "runtime_status", None) is not None:
        # This tick ran before (the activity is repeated after a crash): its job is already there.
        return {**outcome, "submitted": True}
    others = [other for other in payload.get("recentJobs") or [] if other != job_id]
    decision = decide_concurrency(ConcurrencyPolicy(payload["policy"]), await running_jobs(client, tenant, others))
    if not decision.submit:
        return {**outcome, "submitted": False, "reason": decision.reason}
    for replaced in decision.cancel:
        try:
            await request_cancel(client, tenant, replaced)
        except Exception as exc:  # it finished since it was seen running: nothing is left to cancel
            log.info("no cancel for %s of schedule %s: %s", replaced, schedule_id, exc)
    try:
        sealed = payload.get("sealedSecureEnv")
        secure_env = unseal(settings().signing_keys, sealed) if sealed else {}
    except SealError as error:
        return {**outcome, "submitted": False, "reason": f"the schedule's secure env values cannot be opened: {error}"}
    spec = JobSpec.from_dict(payload["job"]).model_copy(update={"job_id": job_id, "secure_env": secure_env})
    try:
        await start_job(client, tenant, spec)
    except ApiError as error:  # a job of another spec holds the id (one the tenant submitted by hand)
        return {**outcome, "submitted": False, "reason": error.message}
    log.info("schedule %s of %s submitted %s", schedule_id, tenant, job_id)
    replaced_jobs = {"replaced": list(decision.cancel)} if decision.cancel else {}
    return {**outcome, "submitted": True, **replaced_jobs}
