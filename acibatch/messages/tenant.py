"""The `tenant` entity's operations the orchestrations send: task_finished, record_usage, update_job.

(`configure` and `register_job` come from the API, which owns their shapes.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from acibatch.records import TaskState


@dataclass(frozen=True, slots=True)
class TaskFinished:
    outcome: TaskState

    def to_dict(self) -> dict[str, Any]:
        return {"outcome": str(self.outcome)}

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> TaskFinished:
        return cls(TaskState(data["outcome"]))


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """`record_usage`: what one lease used, billed to the tenant."""

    lease_id: str
    cores: float
    memory_gb: float
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"leaseId": self.lease_id, "cores": self.cores, "memoryGb": self.memory_gb, "seconds": self.seconds}

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> UsageRecord:
        return cls(str(data["leaseId"]), float(data["cores"]), float(data["memoryGb"]), float(data["seconds"]))


@dataclass(frozen=True, slots=True)
class JobUpdate:
    """`update_job`: a job's state in the tenant's job index; `finished_at` is sent only when the job ended."""

    job_id: str
    state: str
    finished_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"jobId": self.job_id, "state": self.state}
        if self.finished_at is not None:
            data["finishedAt"] = self.finished_at
        return data

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> JobUpdate:
        return cls(str(data["jobId"]), str(data["state"]), data.get("finishedAt"))
