"""The job activities' messages: `cancel_tasks` (which job's running tasks to stop) and `notify_job`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class JobRef:
    tenant: str
    job_id: str

    def to_dict(self) -> dict[str, Any]:
        return {"tenant": self.tenant, "jobId": self.job_id}

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> JobRef:
        return cls(str(data["tenant"]), str(data["jobId"]))


@dataclass(frozen=True, slots=True)
class Notification:
    """`notify_job`: the job's end, posted signed to its notifyUrl."""

    url: str
    body: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"url": self.url, "body": dict(self.body)}

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> Notification:
        return cls(str(data["url"]), data["body"])


@dataclass(frozen=True, slots=True)
class NotifyResult:
    """What `notify_job` did: the receiver's 2xx status, or the outbound guard's refusal (never retried); a
    receiver that answers otherwise fails the activity, so its retries run."""

    status: int | None = None
    refused: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status} if self.refused is None else {"refused": self.refused}

    @classmethod
    def parse(cls, data: Any) -> NotifyResult:
        if not isinstance(data, Mapping):
            return cls()
        refused = data.get("refused")
        return cls(data.get("status"), None if not refused else str(refused))
