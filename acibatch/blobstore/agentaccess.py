"""Everything the create activity needs for an agent task: the tenant container, the attempt's SAS, the manifest.

Called only inside the create activity, so the SAS it mints go into the ACI request and never into Durable
history. Failures come out as `AgentStorageError` with an HTTP-like status the create policy classifies: None
(storage unreachable: retried), 4xx (configuration or permissions: the task fails with the message).
"""

from __future__ import annotations

from acibatch.agentgroup import AgentPart, start_timeout
from acibatch.blobstore.manifest import manifest_json, needs_default_outputs, needs_tenant_inputs
from acibatch.blobstore.sas import SasWindow, StorageConfigError, attempt_access
from acibatch.blobstore.store import BlobForbidden, BlobStoreError, BlobTransient, blob_store
from acibatch.plan import TaskInput
from acibatch.settings import StorageSettings

STORAGE_NOT_CONFIGURED = "StorageNotConfigured"
STORAGE_FORBIDDEN = "StorageAuthorizationFailed"
STORAGE_FAILED = "StorageRequestFailed"


class AgentStorageError(Exception):
    def __init__(self, status: int | None, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


def agent_part(storage: StorageSettings, task: TaskInput, attempt: int, created_at: int | None = None) -> AgentPart:
    """The agent's part of the attempt's group. `created_at` (the attempt's creation, epoch seconds) fixes the
    SAS window, so a re-run of the create activity signs the same SAS (`SasWindow.for_attempt`)."""
    if not storage.enabled or storage.agent_image is None:
        raise AgentStorageError(
            400,
            STORAGE_NOT_CONFIGURED,
            "the task runs with the acibatch agent (it was submitted while blob storage was on), but blob storage "
            "is not configured now: set BATCH_STORAGE_CONNECTION_STRING or BATCH_STORAGE_ACCOUNT_URL again",
        )
    try:
        store = blob_store(storage)
        store.ensure_container(task.tenant)
        window = SasWindow.for_attempt(task.task_timeout_seconds, created_at)
        access = attempt_access(
            store.signer, store.container_name(task.tenant), task.job_id, task.task_id, attempt, window,
            inputs=needs_tenant_inputs(task), outputs=needs_default_outputs(task),
        )  # fmt: skip
    except StorageConfigError as error:
        raise AgentStorageError(400, STORAGE_NOT_CONFIGURED, str(error)) from None
    except BlobForbidden as error:
        raise AgentStorageError(
            403, STORAGE_FORBIDDEN, f"{error}: give the app's identity the Storage Blob Data Contributor role"
        ) from None
    except BlobTransient as error:
        raise AgentStorageError(None, STORAGE_FAILED, str(error)) from None
    except BlobStoreError as error:
        raise AgentStorageError(error.status, STORAGE_FAILED, str(error)) from None
    return AgentPart(
        image=storage.agent_image,
        manifest=manifest_json(task, attempt, access),
        cpu=storage.agent_cpu,
        memory_gb=storage.agent_memory_gb,
        start_timeout_seconds=start_timeout(storage.agent_start_timeout_seconds, task.task_timeout_seconds),
    )
