"""The `tenant` entity's operations: task_finished, record_usage and update_job from the orchestrations,
configure and register_job from the API."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from acibatch.leases import Quota
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


@dataclass(frozen=True, slots=True)
class TenantConfig:
    """`configure`: the tenant's quota, and its new API key's hash when the key changes (sent only then)."""

    quota: Quota
    api_key_hash: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"quota": self.quota.to_dict()}
        if self.api_key_hash is not None:
            data["apiKeyHash"] = self.api_key_hash
        return data

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> TenantConfig:
        return cls(Quota.from_dict(data["quota"]), data.get("apiKeyHash"))


@dataclass(frozen=True, slots=True)
class JobRegistration:
    """`register_job`: a new job in the tenant's job index; `fingerprint` (its spec's) tells a repeated submit
    of the same job from a different job under the same id. Older senders left it out."""

    job_id: str
    created_at: str
    fingerprint: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"jobId": self.job_id, "createdAt": self.created_at, "fingerprint": self.fingerprint}

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> JobRegistration:
        return cls(str(data["jobId"]), str(data["createdAt"]), data.get("fingerprint", ""))
