"""`POST /api/callbacks/{jobId}/{taskId}?tenant=...`: a container reports progress or completion.

The bearer token is the per-attempt HMAC token the container received as a secure env var. It is checked
against the attempt the task orchestration is currently running, so a token of another task or of an older
attempt is refused and raises nothing. An attempt has two tokens, the task's and (for a task run with the
acibatch agent) the agent sidecar's; each may send only its own statuses (`acibatch.callbacks.sender_refusal`),
so the task's code cannot report `completed` and end its attempt before its outputs are uploaded. A report for a
finished task is acknowledged and ignored, which makes retries by the container harmless.
"""

from __future__ import annotations

import azure.durable_functions as df
import azure.functions as func

from acibatch import durable_names as names
from acibatch.callbacks import CallbackInvalid, parse_callback, sender_refusal
from acibatch.naming import task_instance_id, validate_tenant_id
from acibatch.records import TaskRecord
from acibatch.settings import current as settings
from acibatch.spec import ID_RULE
from acibatch.tokens import callback_sender
from api import bp
from api.common import ApiError, bearer_token, handle_errors, json_response, read_json

REFUSED = "the token is not valid for the current attempt of this task"


@bp.route(route="callbacks/{jobId}/{taskId}", methods=["POST"])
@bp.durable_client_input(client_name="client")
@handle_errors
async def task_callback(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    token = bearer_token(req)
    tenant = req.params.get("tenant", "")
    job_id, task_id = req.route_params.get("jobId", ""), req.route_params.get("taskId", "")
    # No task has an id outside these rules, so no token can be valid for one; refusing here also keeps
    # characters that instance ids forbid (control characters, '#', '?') away from the durable client's URLs.
    if validate_tenant_id(tenant) or not ID_RULE.fullmatch(job_id) or not ID_RULE.fullmatch(task_id):
        raise ApiError(403, "Forbidden", REFUSED)
    instance = task_instance_id(tenant, job_id, task_id)
    status = await client.get_status(instance)
    runtime = getattr(status, "runtime_status", None)
    custom = getattr(status, "custom_status", None)
    if runtime is None or not isinstance(custom, dict):
        raise ApiError(403, "Forbidden", REFUSED)
    record = TaskRecord.from_dict(custom)
    sender = callback_sender(token, instance, record.attempt, settings().signing_keys) if record.attempt >= 1 else None
    if sender is None:
        raise ApiError(403, "Forbidden", REFUSED)
    body = read_json(req)
    refusal = sender_refusal(body, sender)
    if refusal is not None:
        raise ApiError(403, "Forbidden", refusal)
    try:
        report = parse_callback(body, record.attempt)
    except CallbackInvalid as invalid:
        details = [{"path": path, "message": message} for path, message in invalid.errors]
        raise ApiError(400, "InvalidCallback", "the callback body is invalid", details) from None
    if str(getattr(runtime, "value", runtime)) != "Running" or record.state.terminal:
        return json_response({"accepted": False, "reason": "the task has already finished"}, 200)
    try:
        await client.raise_event(instance, names.EVENT_CALLBACK, report.to_dict())
    except Exception:
        # The task finished between our read and the raise (the host answers 410): same as a late repeat.
        if getattr(await client.get_status(instance), "runtime_status", None) is not None:
            return json_response({"accepted": False, "reason": "the task has already finished"}, 200)
        raise
    return json_response({"accepted": True, "attempt": record.attempt}, 202)
