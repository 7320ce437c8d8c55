"""The agent's manifest for one attempt: what to download, what to upload where, where to write logs and result.

Built inside the create activity and written only into the ACI request's secret volume: it holds SAS URLs. The
entries are the task's normalised `resourceFiles` / `outputFiles` (`acibatch.filespec`: Batch's names, defaults
filled), turned into what the agent runs (`agent/acibatch_agent`): `autoStorageContainerName: n` becomes the
tenant's container with `blobPrefix` `inputs/n/<prefix>` and `stripPrefix` `inputs/n/` (files land as Batch puts
them, under `filePath` by their name relative to n); the default output destination becomes the tenant's
container under `jobs/{job}/tasks/{task}/outputs/`, with the user's `path` below it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from acibatch.agentgroup import WORK_DIR
from acibatch.blobstore import layout
from acibatch.blobstore.layout import LogStream
from acibatch.blobstore.sas import AttemptAccess
from acibatch.plan import TaskInput

MANIFEST_VERSION = 1
DEFAULT_FILE_MODE = "0770"
DEFAULT_UPLOAD_CONDITION = "taskCompletion"


class InputKind(StrEnum):
    HTTP = "http"
    CONTAINER = "container"


class Destination(StrEnum):
    DEFAULT = "default"  # the tenant's container, listed and served by the API
    CUSTOM = "custom"  # a containerUrl of the tenant's own


def _container_of(entry: Mapping[str, Any]) -> Mapping[str, Any]:
    return (entry.get("destination") or {}).get("container") or {}


def needs_tenant_inputs(task: TaskInput) -> bool:
    """Whether the attempt reads the tenant's uploaded inputs (autoStorageContainerName)."""
    return any(entry.get("autoStorageContainerName") for entry in task.resource_files)


def needs_default_outputs(task: TaskInput) -> bool:
    """Whether any output goes to the tenant's own container (no containerUrl)."""
    return any(not _container_of(entry).get("containerUrl") for entry in task.output_files)


def _input(entry: Mapping[str, Any], tenant_inputs: str | None) -> dict[str, Any]:
    mode = entry.get("fileMode") or DEFAULT_FILE_MODE
    if entry.get("httpUrl"):
        return {"kind": InputKind.HTTP, "url": entry["httpUrl"], "filePath": entry["filePath"], "fileMode": mode}
    item: dict[str, Any] = {"kind": InputKind.CONTAINER, "filePath": entry.get("filePath") or "", "fileMode": mode}
    prefix = entry.get("blobPrefix") or ""
    if entry.get("storageContainerUrl"):
        return {**item, "containerUrl": entry["storageContainerUrl"], "blobPrefix": prefix, "stripPrefix": ""}
    name = entry.get("autoStorageContainerName")
    if not name or tenant_inputs is None:
        raise ValueError("a resource file needs httpUrl, storageContainerUrl or autoStorageContainerName")
    base = layout.input_prefix(name)
    return {**item, "containerUrl": tenant_inputs, "blobPrefix": base + prefix, "stripPrefix": base}


def _output(entry: Mapping[str, Any], task: TaskInput, default_container: str | None) -> dict[str, Any]:
    container = _container_of(entry)
    user_path = container.get("path") or ""
    condition = (entry.get("uploadOptions") or {}).get("uploadCondition") or DEFAULT_UPLOAD_CONDITION
    item = {"filePattern": entry["filePattern"], "uploadCondition": condition}
    if container.get("containerUrl"):
        return {**item, "containerUrl": container["containerUrl"], "path": user_path, "destination": Destination.CUSTOM}
    if default_container is None:
        raise ValueError("a default output destination needs the tenant container's SAS")
    # With no user path the prefix keeps its trailing '/': the agent then names a single matched file by its own
    # name below the prefix (Batch names it by `path` only when a path is given).
    path = layout.outputs_prefix(task.job_id, task.task_id) + user_path
    return {**item, "containerUrl": default_container, "path": path, "destination": Destination.DEFAULT}


def build_manifest(task: TaskInput, attempt: int, access: AttemptAccess) -> dict[str, Any]:
    """The manifest as a JSON-ready dict (it holds SAS URLs: never log or return it)."""
    return {
        "version": MANIFEST_VERSION,
        "attempt": attempt,
        "workDir": WORK_DIR,
        "inputs": [_input(entry, access.inputs) for entry in task.resource_files],
        "outputs": [_output(entry, task, access.outputs) for entry in task.output_files],
        "logs": {str(stream): access.logs[stream] for stream in LogStream},
        "result": access.result,
    }


def manifest_json(task: TaskInput, attempt: int, access: AttemptAccess) -> str:
    return json.dumps(build_manifest(task, attempt, access), separators=(",", ":"))
