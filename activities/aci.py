"""ACI activities: thin, idempotent wrappers over `acibatch.aci.AciGateway`.

Expected ARM failures are returned as data (`acibatch.messages.aci.CreateResult` and the like) so the task
orchestrator can decide with the policy; only unexpected bugs raise. Secrets (the callback token, sealed secure
env values) are produced here, inside the activity, so they never enter orchestration history.
"""

from __future__ import annotations

import dataclasses
from typing import Any, cast

from acibatch import durable_names as names
from acibatch.aci import AciGateway, ArmError, GroupRequest, RegistryCredentials, arm_error_from, shared_gateway
from acibatch.agentgroup import AgentPart
from acibatch.blobstore.agentaccess import AgentStorageError, agent_part
from acibatch.messages.aci import (
    CleanupRequest,
    CleanupResult,
    CreateGroupInput,
    CreateResult,
    GroupRef,
    GroupStateAnswer,
)
from acibatch.plan import TaskInput
from acibatch.policy import SECURE_ENV_UNSEALABLE
from acibatch.sealing import SealError, unseal
from acibatch.settings import current as settings
from acibatch.tokens import TokenPurpose, callback_token
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


def group_request(create: CreateGroupInput) -> GroupRequest:
    task, config = create.task, settings()
    secure = unseal(config.signing_keys, task.sealed_secure_env) if task.sealed_secure_env else {}
    system_env = {
        "BATCH_CALLBACK_URL": callback_url(task),
        "BATCH_JOB_ID": task.job_id,
        "BATCH_TASK_ID": task.task_id,
        "BATCH_TASK_INDEX": str(task.index),
        "BATCH_ATTEMPT": str(create.attempt),
    }
    token = callback_token(config.callback_signing_key, create.owner, create.attempt, token_format=create.token_format)
    return GroupRequest(
        name=create.name,
        tenant=task.tenant,
        job_id=task.job_id,
        task_id=task.task_id,
        attempt=create.attempt,
        owner=create.owner,
        image=task.image,
        command=task.command,
        env={**task.env, **system_env},
        secure_env={**secure, "BATCH_CALLBACK_TOKEN": token},
        cpu=task.cpu,
        memory_gb=task.memory_gb,
        priority=create.priority,
        created_at=create.created_at,
        location=config.location,
        agent=agent_for(create),
    )


def agent_for(create: CreateGroupInput) -> AgentPart | None:
    """The agent's part of the group, SAS and the sidecar's own callback token (the agent token) minted here: they
    go into the ACI request and nowhere else.

    The sidecar asks for the request recorded in the task's input at submission, the one its lease counted, not
    today's settings. An input recorded before the request was (it has none) asks what the settings say.
    """
    task = create.task
    if not task.agent:
        return None
    part = agent_part(settings().storage, task, create.attempt, create.created_at)
    key = settings().callback_signing_key
    token = callback_token(key, create.owner, create.attempt, TokenPurpose.AGENT, create.token_format)
    part = dataclasses.replace(part, callback_token=token)
    if not task.agent_cpu:
        return part
    return dataclasses.replace(part, cpu=task.agent_cpu, memory_gb=task.agent_memory_gb)


# Each trigger keeps its parameter typed `object` (the real Python worker refuses to index an activity whose
# parameter is a pydantic model or `dict[str, Any]`: see devhost/workerrules.py) and parses the message inside.


@bp.activity_trigger(input_name="payload", activity=names.CREATE_GROUP)
def create_group(payload: object) -> dict[str, Any]:
    try:
        request = group_request(CreateGroupInput.parse(cast(dict[str, Any], payload)))
    except SealError as error:  # permanent and not ACI's doing: the policy fails the task with this message
        return CreateResult(ArmError(None, SECURE_ENV_UNSEALABLE, str(error))).to_dict()
    except AgentStorageError as error:  # the message names the storage problem, never a SAS or key
        return CreateResult(ArmError(error.status, error.code, str(error))).to_dict()
    try:
        gateway().create(request, registry())
    except ArmError as error:
        return CreateResult(error).to_dict()
    except Exception as exc:  # transport errors and the like: the policy treats status None as transient
        return CreateResult(arm_error_from(exc)).to_dict()
    return CreateResult().to_dict()


@bp.activity_trigger(input_name="payload", activity=names.GET_GROUP_STATE)
def get_group_state(payload: object) -> dict[str, Any]:
    group = GroupRef.parse(cast(dict[str, Any], payload))
    try:
        return GroupStateAnswer(gateway().get_state(group.name).to_dict()).to_dict()
    except ArmError as error:
        if error.status != 429:
            raise
        # ARM throttled the read: no news, not an unreadable group (the next poll asks again).
        return GroupStateAnswer(None, throttled=error.retry_after or 0.0).to_dict()


@bp.activity_trigger(input_name="payload", activity=names.RESTART_GROUP)
def restart_group(payload: object) -> bool:
    return gateway().restart(GroupRef.parse(cast(dict[str, Any], payload)).name)


@bp.activity_trigger(input_name="payload", activity=names.CLEANUP_GROUP)
def cleanup_group(payload: object) -> dict[str, Any]:
    """Keep the log tail and exit code, then stop and/or delete the group (both idempotent).

    When the orchestrator already knows how the container ended (`exitCode`) and nothing needs stopping, the
    log read alone tells whether the group is still there: one ARM call fewer on every finished task.
    """
    request = CleanupRequest.parse(cast(dict[str, Any], payload))
    name, known_exit = request.name, request.exit_code
    aci = gateway()
    if known_exit is None or request.stop:
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
        exists, exit_code = log is not None, known_exit
    if exists and request.stop:
        aci.stop(name)
    retry_after = None
    if exists and request.delete:
        try:
            aci.delete(name, known_to_exist=True)
        except ArmError as error:
            if error.status != 429:
                raise
            # ARM's delete rate limit: the task waits Retry-After durably and asks again (it keeps the lease).
            retry_after = error.retry_after or 30.0
    return CleanupResult(None if log is None else log[-LOG_TAIL_CHARS:], exit_code, exists, retry_after).to_dict()
