"""`POST /api/callbacks/{jobId}/{taskId}?tenant=...`: a container reports progress or completion.

The bearer token is the per-attempt HMAC token the container received as a secure env var. A token of the `v3` or
`v2` format (see `acibatch.tokens`) names its attempt under the HMAC, so a forged token, or one of another task or
tenant, is refused (403) before any Durable call. A `v1` token (minted before v2, held by containers created across
a deploy) names no attempt: it is checked against the attempt the task runs now.

A `v3` report is one raise and no read: its task waits for each attempt's reports under that attempt's own event
name (`acibatch.callbacks.attempt_event`), so the report is raised under the name its token proved. An older
attempt's report lands under a name nobody waits for any more and can never take the place of the current one's,
and a task that has finished or been purged is told by the host's answer to the raise (410 or 404), answered 200
`accepted: false`.

A `v2` or `v1` report goes to a task that waits under one name for every attempt (the default, and every task
started before per-attempt names). There the task's live record is read first (its custom status, without the
input), and only a report of the attempt the task runs now is raised: events that reach an orchestration while it is
not waiting for them are kept by name by the Durable SDK, the last one winning, so an older attempt's report raised
after the current one's (a leaked container retrying, say) would erase it. An older attempt's v2 report is answered
200 `accepted: false` (it was genuine, the task has moved on, so the sender should stop); an older attempt's v1
token is refused (403), as it always was.

An attempt has two tokens, the task's and (for a task run with the acibatch agent) the agent sidecar's; each may
send only its own statuses (`acibatch.callbacks.sender_refusal`), so the task's code cannot report `completed` and
end its attempt before its outputs are uploaded. A report for a finished or purged task is acknowledged and ignored
(200), which makes retries by the container harmless.
"""

from __future__ import annotations

import azure.durable_functions as df
import azure.functions as func

from acibatch import durable_names as names
from acibatch.callbacks import CallbackInvalid, CallbackReport, attempt_event, parse_callback, sender_refusal
from acibatch.naming import task_instance_id, validate_tenant_id
from acibatch.records import TaskRecord
from acibatch.settings import current as settings
from acibatch.spec import ID_RULE
from acibatch.tokens import TokenFormat, TokenPurpose, callback_sender, token_attempt, token_format
from api import bp
from api.common import ApiError, bearer_token, handle_errors, json_response, read_json
from api.raising import raise_unless_finished
from api.statusreads import read_status

REFUSED = "the token is not valid for the current attempt of this task"
FINISHED = {"accepted": False, "reason": "the task has already finished"}


@bp.route(route="callbacks/{jobId}/{taskId}", methods=["POST"])
@bp.durable_client_input(client_name="client")
@handle_errors
async def task_callback(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    token = bearer_token(req)
    tenant = req.params.get("tenant", "")
    job_id, task_id = req.route_params.get("jobId", ""), req.route_params.get("taskId", "")
    # No task has an id outside these rules, so no token can be valid for one; refusing here also keeps
    # characters that instance ids forbid (control characters, '#', '?') away from the durable client's URLs.
    # A token of neither format's shape is nobody's: refused before any client call.
    written = token_format(token)
    if validate_tenant_id(tenant) or not ID_RULE.fullmatch(job_id) or not ID_RULE.fullmatch(task_id) or not written:
        raise ApiError(403, "Forbidden", REFUSED)
    instance = task_instance_id(tenant, job_id, task_id)
    if written is TokenFormat.V3:
        return await raise_attempt_report(req, client, token, instance)
    if written is TokenFormat.V2:  # checked from itself first: a forged token, or another task's, reads nothing
        attempt = token_attempt(token) or 0
        sender = verified_sender(token, instance, attempt)
        current, finished = await live_attempt(client, instance)
    else:  # a v1 token is valid only for the attempt the task runs now
        current, finished = await live_attempt(client, instance)
        attempt = current
        sender = verified_sender(token, instance, attempt)
    report = checked_report(req, sender, attempt)
    if finished:
        return json_response(FINISHED, 200)
    if attempt != current:
        moved_on = f"the report is of attempt {attempt}; the task has moved on to attempt {current}"
        return json_response({"accepted": False, "reason": moved_on}, 200)
    if not await raise_unless_finished(client, instance, names.EVENT_CALLBACK, report.to_dict()):
        return json_response(FINISHED, 200)
    return json_response({"accepted": True, "attempt": attempt}, 202)


async def raise_attempt_report(
    req: func.HttpRequest, client: df.DurableOrchestrationClient, token: str, instance: str
) -> func.HttpResponse:
    """A v3 report: checked from its token alone, then raised under its attempt's event name, with no read."""
    attempt = token_attempt(token) or 0
    report = checked_report(req, verified_sender(token, instance, attempt), attempt)
    if not await raise_unless_finished(client, instance, attempt_event(attempt), report.to_dict()):
        return json_response(FINISHED, 200)
    return json_response({"accepted": True, "attempt": attempt}, 202)


def checked_report(req: func.HttpRequest, sender: TokenPurpose, attempt: int) -> CallbackReport:
    """The body as a report of `sender`: 403 for a status the sender may not send, 400 for an invalid body."""
    body = read_json(req)
    refusal = sender_refusal(body, sender)
    if refusal is not None:
        raise ApiError(403, "Forbidden", refusal)
    return parsed(body, attempt)


def verified_sender(token: str, instance: str, attempt: int) -> TokenPurpose:
    """Whose token this is for that attempt of the task (the task's or the agent's); 403 when it is neither."""
    sender = callback_sender(token, instance, attempt, settings().signing_keys) if attempt >= 1 else None
    if sender is None:
        raise ApiError(403, "Forbidden", REFUSED)
    return sender


def parsed(body: object, attempt: int) -> CallbackReport:
    try:
        return parse_callback(body, attempt)
    except CallbackInvalid as invalid:
        details = [{"path": path, "message": message} for path, message in invalid.errors]
        raise ApiError(400, "InvalidCallback", "the callback body is invalid", details) from None


async def live_attempt(client: df.DurableOrchestrationClient, instance: str) -> tuple[int, bool]:
    """The attempt the task runs now and whether it has finished, from its live record (the custom status, read
    without the input). A task that does not exist, or has no record yet, has no valid token: 403."""
    status = await read_status(client, instance)
    custom = None if status is None else status.custom_status
    if status is None or status.runtime_status is None or not isinstance(custom, dict):
        raise ApiError(403, "Forbidden", REFUSED)
    record = TaskRecord.from_dict(custom)
    return record.attempt, status.runtime_status != "Running" or record.state.terminal
