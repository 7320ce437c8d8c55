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

from acibatch.callbackevents import CallbackEvents, callback_events_of, events_field
from acibatch.exitrules import ExitConditions
from acibatch.naming import job_instance_id, task_instance_id
from acibatch.spec import JobSpec

CHUNK_SIZE = 100
MIN_CHUNK_SIZE = 10
# `chunk_window`: how many times the region's groups a job's chunks may have begun at once, and the least per chunk.
WINDOW_TURNS = 2
MIN_CHUNK_WINDOW = 2


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
    # Batch-named camelCase dicts with defaults filled (acibatch.filespec): the job's entries, then the task's.
    resource_files: tuple[dict[str, Any], ...] = ()
    output_files: tuple[dict[str, Any], ...] = ()
    # Run with the acibatch agent (stage-in, whole logs, outputs): storage was on when the job was submitted and
    # the task has a command for the agent's wrapper to run.
    agent: bool = False
    # The agent sidecar's request (`acibatch.agentshare`), decided at submission: its group asks ACI for the task's
    # cpu/memory plus these, and its lease counts the same sum. 0 for a task without the agent.
    agent_cpu: float = 0.0
    agent_memory_gb: float = 0.0

    @property
    def instance_id(self) -> str:
        return task_instance_id(self.tenant, self.job_id, self.task_id)

    @property
    def group_cpu(self) -> float:
        """The cores the task's whole container group requests (what ACI's core quota and the lease count)."""
        return group_total(self.cpu, self.agent_cpu)

    @property
    def group_memory_gb(self) -> float:
        return group_total(self.memory_gb, self.agent_memory_gb)

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
            **({"resourceFiles": [dict(item) for item in self.resource_files]} if self.resource_files else {}),
            **({"outputFiles": [dict(item) for item in self.output_files]} if self.output_files else {}),
            **({"agent": True} if self.agent else {}),
            **({"agentCpu": self.agent_cpu} if self.agent_cpu else {}),
            **({"agentMemoryGb": self.agent_memory_gb} if self.agent_memory_gb else {}),
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
            resource_files=tuple(dict(item) for item in data.get("resourceFiles", ())),
            output_files=tuple(dict(item) for item in data.get("outputFiles", ())),
            agent=bool(data.get("agent", False)),
            agent_cpu=float(data.get("agentCpu", 0.0)),
            agent_memory_gb=float(data.get("agentMemoryGb", 0.0)),
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
    # Whether blob storage was configured when the job was submitted: its tasks with a command then run with the
    # agent. Recorded here so a settings change never alters a job already running (or replaying).
    storage: bool = False
    # The agent sidecar's request while storage is on (settings BATCH_AGENT_CPU / BATCH_AGENT_MEMORY_GB at
    # submission), given to each of its agent tasks: recorded for the same reason as `storage`.
    agent_cpu: float = 0.0
    agent_memory_gb: float = 0.0
    # The event names its tasks wait under ("shared" or "perAttempt", `acibatch.callbackevents`), from
    # BATCH_CALLBACK_EVENTS at submission: recorded so every chunk of the job starts its tasks alike.
    callback_events: CallbackEvents = CallbackEvents.SHARED
    # The region's container groups (ACI_MAX_GROUPS) at submission: how many of a chunk's tasks run at once is sized
    # from it (`chunk_window`). 0 in an input recorded before the field existed: every chunk starts all its tasks.
    region_groups: int = 0

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
            **({"storage": True} if self.storage else {}),  # omitted when off: older inputs stay byte-identical
            **({"agentCpu": self.agent_cpu} if self.agent_cpu else {}),
            **({"agentMemoryGb": self.agent_memory_gb} if self.agent_memory_gb else {}),
            **events_field(self.callback_events),
            **({"regionGroups": self.region_groups} if self.region_groups else {}),
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
            storage=bool(data.get("storage", False)),
            agent_cpu=float(data.get("agentCpu", 0.0)),
            agent_memory_gb=float(data.get("agentMemoryGb", 0.0)),
            callback_events=callback_events_of(data),
            region_groups=int(data.get("regionGroups", 0)),
        )

    def job_spec(self) -> JobSpec:
        return JobSpec.from_dict(self.spec)


def group_total(task: float, agent: float) -> float:
    """A task's request plus the agent's, rounded to the steps both come in (cpu 0.01, memory 0.1) so float noise
    never makes a sum look over a limit; exactly the task's own value when there is no agent."""
    return round(task + agent, 2) if agent else task


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
            resource_files=spec.task_resource_files(task),
            output_files=spec.task_output_files(task),
            **_agent_fields(job, bool(spec.task_command(task))),
        )
        for task in spec.tasks[first : first + count]
    ]


def _agent_fields(job: JobInput, has_command: bool) -> dict[str, Any]:
    """`agent` and the sidecar's request for a task of `job`: the agent wraps a command, so a task running its
    image's default command runs without it (and asks for nothing more)."""
    if not (job.storage and has_command):
        return {"agent": False}
    return {"agent": True, "agent_cpu": job.agent_cpu, "agent_memory_gb": job.agent_memory_gb}


def task_input_at(job: JobInput, spec: JobSpec, index: int) -> TaskInput:
    """The task orchestration input of the job's task at `index`."""
    return task_inputs(job, spec, index, 1)[0]


def chunk_size_for(task_count: int) -> int:
    """About sqrt(n) tasks per chunk: each completion replays its chunk's history and each chunk's completion the
    job's, so the replay work is ~n*size + (n/size)^2, smallest near size = sqrt(n) (bounded to 10..100)."""
    return max(MIN_CHUNK_SIZE, min(CHUNK_SIZE, math.isqrt(max(task_count, 1) - 1) + 1))


def chunk_window(task_count: int, region_groups: int) -> int | None:
    """The most of a chunk's tasks that have begun and not ended (the chunk starts them in waves, so between about
    half and all of it run): across the job's chunks, WINDOW_TURNS times the region's container groups and at least
    MIN_CHUNK_WINDOW per chunk. Enough that a lease that comes free has a task waiting for it, while a 10,000-task
    job does not put 10,000 requests in the capacity entity's queue: its state, which grows with the queue, is sent
    to a worker and stored again for every batch of its operations (and on Azure Storage goes through a blob once
    over about 45 KB). None (start every task at once) for an input recorded without `region_groups`."""
    if region_groups <= 0:
        return None
    chunks = len(chunk_ranges(task_count))
    return max(MIN_CHUNK_WINDOW, -(-WINDOW_TURNS * region_groups // max(chunks, 1)))


def chunk_ranges(task_count: int, chunk_size: int | None = None) -> list[tuple[int, int]]:
    """`(first, count)` per chunk covering all tasks in order."""
    size = chunk_size or chunk_size_for(task_count)
    return [(first, min(size, task_count - first)) for first in range(0, task_count, size)]
