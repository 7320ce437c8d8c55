"""ACI activities: thin, idempotent wrappers over `acibatch.aci.AciGateway`.

Expected ARM failures are returned as data (`{"ok": false, "error": {...}}`) so the task orchestrator can
decide with the policy; only unexpected bugs raise. Secrets (the callback token, sealed secure env values)
are produced here, inside the activity, so they never enter orchestration history.
"""

from __future__ import annotations

from typing import Any, cast

from acibatch.aci import AciGateway, ArmError, GroupRequest, RegistryCredentials, arm_error_from, shared_gateway
from acibatch.plan import TaskInput
from acibatch.policy import SECURE_ENV_UNSEALABLE
from acibatch.sealing import SealError, unseal
from acibatch.settings import current as settings
from acibatch.tokens import callback_token
from activities import bp

LOG_TAIL_CHARS = 16 * 1024


def gateway() -> AciGateway:
    config = settings()
    return shared_gateway(config.subscription_id, config.aci_endpoint, config.resource_group, config.aci_endpoint_token)


def registry() -> RegistryCredentials | None:
    config = settings()
    if not config.registry_server:
        return None
    return RegistryCredentials(
        server=config.registry_server,
        username=config.registry_username,
        password=config.registry_password,
        identity=config.registry_identity,
    )


def callback_url(task: TaskInput) -> str:
    base = settings().callback_base_url.rstrip("/")
    return f"{base}/api/callbacks/{task.job_id}/{task.task_id}?tenant={task.tenant}"


def group_request(payload: dict[str, Any]) -> GroupRequest:
    task = TaskInput.from_dict(payload)
    config = settings()
    attempt = int(payload["attempt"])
    secure = unseal(config.signing_keys, task.sealed_secure_env) if task.sealed_secure_env else {}
    system_env = {
        "BATCH_CALLBACK_URL": callback_url(task),
        "BATCH_JOB_ID": task.job_id,
        "BATCH_TASK_ID": task.task_id,
        "BATCH_TASK_INDEX": str(task.index),
        "BATCH_ATTEMPT": str(attempt),
    }
    token = callback_token(config.callback_signing_key, str(payload["owner"]), attempt)
    return GroupRequest(
        name=str(payload["name"]),
        tenant=task.tenant,
        job_id=task.job_id,
        task_id=task.task_id,
        attempt=attempt,
        owner=str(payload["owner"]),
        image=task.image,
        command=task.command,
        env={**task.env, **system_env},
        secure_env={**secure, "BATCH_CALLBACK_TOKEN": token},
        cpu=task.cpu,
        memory_gb=task.memory_gb,
        priority=str(payload["priority"]),
        created_at=int(payload["createdAt"]),
        location=config.location,
    )


@bp.activity_trigger(input_name="payload", activity="create_group")
def create_group(payload: object) -> dict[str, Any]:
    payload = cast(dict[str, Any], payload)  # typed `object` for the Python worker: see devhost/workerrules.py
    try:
        request = group_request(payload)
    except SealError as error:  # permanent and not ACI's doing: the policy fails the task with this message
        return {"ok": False, "error": {"status": None, "code": SECURE_ENV_UNSEALABLE, "message": str(error)}}
    try:
        gateway().create(request, registry())
    except ArmError as error:
        return {"ok": False, "error": error.to_dict()}
    except Exception as exc:  # transport errors and the like: the policy treats status None as transient
        return {"ok": False, "error": arm_error_from(exc).to_dict()}
    return {"ok": True}


@bp.activity_trigger(input_name="payload", activity="get_group_state")
def get_group_state(payload: object) -> dict[str, Any]:
    payload = cast(dict[str, Any], payload)  # typed `object` for the Python worker: see devhost/workerrules.py
    try:
        return gateway().get_state(str(payload["name"])).to_dict()
    except ArmError as error:
        if error.status != 429:
            raise
        # ARM throttled the read: no news, not an unreadable group (the next poll asks again).
        return {"throttled": error.retry_after or 0.0}


@bp.activity_trigger(input_name="payload", activity="restart_group")
def restart_group(payload: object) -> bool:
    payload = cast(dict[str, Any], payload)  # typed `object` for the Python worker: see devhost/workerrules.py
    return gateway().restart(str(payload["name"]))


@bp.activity_trigger(input_name="payload", activity="cleanup_group")
def cleanup_group(payload: object) -> dict[str, Any]:
    """Keep the log tail and exit code, then stop and/or delete the group (both idempotent).

    When the orchestrator already knows how the container ended (`exitCode`) and nothing needs stopping, the
    log read alone tells whether the group is still there: one ARM call fewer on every finished task.
    """
    payload = cast(dict[str, Any], payload)  # typed `object` for the Python worker: see devhost/workerrules.py
    name = str(payload["name"])
    aci = gateway()
    known_exit = payload.get("exitCode")
    if known_exit is None or payload.get("stop"):
        try:
            state = aci.get_state(name)
        except Exception:
            # The group cannot be read (the reason its attempt may have ended): delete it all the same, blind,
            # since both calls are idempotent and a group left behind would hold ACI capacity.
            exists, exit_code, log = True, None, None
        else:
            exists, exit_code = state.exists, state.exit_code
            log = aci.logs(name) if exists else None
    else:
        log = aci.logs(name)
        exists, exit_code = log is not None, int(known_exit)
    if exists and payload.get("stop"):
        aci.stop(name)
    retry_after = None
    if exists and payload.get("delete"):
        try:
            aci.delete(name, known_to_exist=True)
        except ArmError as error:
            if error.status != 429:
                raise
            # ARM's delete rate limit: the task waits Retry-After durably and asks again (it keeps the lease).
            retry_after = error.retry_after or 30.0
    return {
        "logTail": None if log is None else log[-LOG_TAIL_CHARS:],
        "exitCode": exit_code,
        "existed": exists,
        "retryAfter": retry_after,
    }
