"""The inputs of the job, chunk and task orchestrations, derived from a validated job spec.

A job fans out in two levels: the job orchestration starts one chunk orchestration per ~sqrt(n) tasks,
and each chunk starts one task orchestration per task. That keeps every history bounded (the Python SDK
replays the whole history on each episode), so a 10,000-task job costs the same per event as a small one.
Secure env values are sealed before they get here: orchestration inputs are stored in plaintext.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from acibatch.exitrules import ExitConditions
from acibatch.naming import job_instance_id, task_instance_id
from acibatch.spec import JobSpec

CHUNK_SIZE = 100
MIN_CHUNK_SIZE = 10


@dataclass(frozen=True)
class TaskInput:
    """Everything one task orchestration needs; JSON-safe via to_dict/from_dict."""

    tenant: str
    job_id: str
    task_id: str
    index: int
    image: str
    command: tuple[str, ...]
    env: Mapping[str, str]
    sealed_secure_env: str | None
    cpu: float
    memory_gb: float
    priority: str
    spot_fallback: bool
    max_attempts: int
    task_timeout_seconds: int
    on_success: str
    on_failure: str
    poll_seconds: float
    exit_rules: tuple[ExitConditions, ...] = ()  # the task's exitConditions, then the job's
    job_priority: int = 0  # the job's jobPriority: orders this tenant's queued leases

    @property
    def instance_id(self) -> str:
        return task_instance_id(self.tenant, self.job_id, self.task_id)

    @property
    def progress_key(self) -> str:
        return progress_entity_key(self.tenant, self.job_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "jobId": self.job_id,
            "taskId": self.task_id,
            "index": self.index,
            "image": self.image,
            "command": list(self.command),
            "env": dict(self.env),
            "sealedSecureEnv": self.sealed_secure_env,
            "cpu": self.cpu,
            "memoryGb": self.memory_gb,
            "priority": self.priority,
            "spotFallback": self.spot_fallback,
            "maxAttempts": self.max_attempts,
            "taskTimeoutSeconds": self.task_timeout_seconds,
            "onSuccess": self.on_success,
            "onFailure": self.on_failure,
            "pollSeconds": self.poll_seconds,
            # Written only when set: a task of a job without them keeps the input (and history) it had before.
            **({"exitConditions": [rules.to_dict() for rules in self.exit_rules]} if self.exit_rules else {}),
            **({"jobPriority": self.job_priority} if self.job_priority else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TaskInput:
        return cls(
            tenant=data["tenant"],
            job_id=data["jobId"],
            task_id=data["taskId"],
            index=int(data["index"]),
            image=data["image"],
            command=tuple(data["command"]),
            env=dict(data["env"]),
            sealed_secure_env=data.get("sealedSecureEnv"),
            cpu=float(data["cpu"]),
            memory_gb=float(data["memoryGb"]),
            priority=data["priority"],
            spot_fallback=bool(data["spotFallback"]),
            max_attempts=int(data["maxAttempts"]),
            task_timeout_seconds=int(data["taskTimeoutSeconds"]),
            on_success=data["onSuccess"],
            on_failure=data["onFailure"],
            poll_seconds=float(data["pollSeconds"]),
            exit_rules=tuple(ExitConditions.from_dict(rules) for rules in data.get("exitConditions", ())),
            job_priority=int(data.get("jobPriority", 0)),
        )


@dataclass(frozen=True)
class JobInput:
    """The job orchestration's input: the spec without secret values, plus what the engine adds."""

    tenant: str
    job_id: str
    spec: Mapping[str, Any]
    sealed_secure_env: str | None
    fingerprint: str
    submitted_at: str
    poll_seconds: float

    @property
    def instance_id(self) -> str:
        return job_instance_id(self.tenant, self.job_id)

    @property
    def progress_key(self) -> str:
        return progress_entity_key(self.tenant, self.job_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "jobId": self.job_id,
            "spec": dict(self.spec),
            "sealedSecureEnv": self.sealed_secure_env,
            "fingerprint": self.fingerprint,
            "submittedAt": self.submitted_at,
            "pollSeconds": self.poll_seconds,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobInput:
        return cls(
            tenant=data["tenant"],
            job_id=data["jobId"],
            spec=data["spec"],
            sealed_secure_env=data.get("sealedSecureEnv"),
            fingerprint=data["fingerprint"],
            submitted_at=data["submittedAt"],
            poll_seconds=float(data["pollSeconds"]),
        )

    def job_spec(self) -> JobSpec:
        return JobSpec.from_dict(self.spec)


def progress_entity_key(tenant: str, job_id: str) -> str:
    # Entity keys may not contain '@' (the Python SDK splits scheduler ids on it); ids never do.
    return f"{tenant}:{job_id}"


def chunk_instance_id(tenant: str, job_id: str, chunk: int) -> str:
    return f"chunk:{tenant}:{job_id}:{chunk}"


def task_inputs(job: JobInput, spec: JobSpec, first: int, count: int) -> list[TaskInput]:
    """The task orchestration inputs for tasks `first .. first+count-1` of the job."""
    return [
        TaskInput(
            tenant=job.tenant,
            job_id=job.job_id,
            task_id=task.id,
            index=task.index,
            image=spec.image,
            command=spec.task_command(task),
            env=spec.task_env(task),
            sealed_secure_env=job.sealed_secure_env,
            cpu=spec.cpu,
            memory_gb=spec.memory_gb,
            priority=str(spec.priority),
            spot_fallback=spec.spot_fallback,
            max_attempts=spec.max_attempts,
            task_timeout_seconds=spec.task_timeout_seconds,
            on_success=str(spec.on_success),
            on_failure=str(spec.on_failure),
            poll_seconds=job.poll_seconds,
            exit_rules=spec.task_exit_rules(task),
            job_priority=spec.job_priority,
        )
        for task in spec.tasks[first : first + count]
    ]


def task_input_at(job: JobInput, spec: JobSpec, index: int) -> TaskInput:
    """The task orchestration input of the job's task at `index`."""
    return task_inputs(job, spec, index, 1)[0]


def chunk_size_for(task_count: int) -> int:
    """About sqrt(n) tasks per chunk: each completion replays its chunk's history and each chunk's completion the
    job's, so the replay work is ~n*size + (n/size)^2, smallest near size = sqrt(n) (bounded to 10..100)."""
    return max(MIN_CHUNK_SIZE, min(CHUNK_SIZE, math.isqrt(max(task_count, 1) - 1) + 1))


def chunk_ranges(task_count: int, chunk_size: int | None = None) -> list[tuple[int, int]]:
    """`(first, count)` per chunk covering all tasks in order."""
    size = chunk_size or chunk_size_for(task_count)
    return [(first, min(size, task_count - first)) for first in range(0, task_count, size)]
