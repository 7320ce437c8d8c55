"""Blob names: where each tenant's inputs, attempt logs, attempt results and default outputs live.

Everything of tenant T is in one container, `<prefix>T`, so a SAS scoped to that container never reaches another
tenant's data. Job and task ids (`[A-Za-z0-9][A-Za-z0-9_.-]*`) and input names (container-name segments) need no
escaping inside a blob name.
"""

from __future__ import annotations

from enum import StrEnum

INPUTS = "inputs"
JOBS = "jobs"
RESULT_NAME = "result.json"


class LogStream(StrEnum):
    STDOUT = "stdout"
    STDERR = "stderr"

    @property
    def blob_name(self) -> str:
        return f"{self.value}.txt"


def tenant_container(prefix: str, tenant: str) -> str:
    return f"{prefix}{tenant}"


def input_prefix(name: str) -> str:
    """What `autoStorageContainerName: name` refers to (with the trailing '/')."""
    return f"{INPUTS}/{name}/"


def input_blob(name: str, path: str) -> str:
    return input_prefix(name) + path.lstrip("/")


def task_prefix(job_id: str, task_id: str) -> str:
    return f"{JOBS}/{job_id}/tasks/{task_id}/"


def attempts_prefix(job_id: str, task_id: str) -> str:
    return task_prefix(job_id, task_id) + "attempts/"


def attempt_prefix(job_id: str, task_id: str, attempt: int) -> str:
    return f"{attempts_prefix(job_id, task_id)}{attempt}/"


def log_blob(job_id: str, task_id: str, attempt: int, stream: LogStream) -> str:
    return attempt_prefix(job_id, task_id, attempt) + stream.blob_name


def result_blob(job_id: str, task_id: str, attempt: int) -> str:
    return attempt_prefix(job_id, task_id, attempt) + RESULT_NAME


def outputs_prefix(job_id: str, task_id: str) -> str:
    """The default output destination (with the trailing '/'); `destination.container.path` is relative to it."""
    return task_prefix(job_id, task_id) + "outputs/"


def attempt_of(blob_name: str, job_id: str, task_id: str) -> int | None:
    """The attempt number in a blob name under the task's attempts prefix, or None."""
    rest = blob_name.removeprefix(attempts_prefix(job_id, task_id))
    head = rest.split("/", 1)[0]
    return int(head) if rest != blob_name and head.isdigit() else None
