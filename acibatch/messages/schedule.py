"""Job schedules' messages: the schedule entity's changes (from the API) and wake-up record (from the
orchestration), the orchestration's input, and the `run_scheduled_job` activity's request and outcome.

A run's outcome is stored as the schedule's `lastRun`/`lastSkip` and shown by the API as it is, so
`RunOutcome.to_dict()` writes exactly what the activity returned before these types existed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, Self, TypeVar

from acibatch.schedules import ConcurrencyPolicy, RunKind


class ScheduleChange(Protocol):
    """A change the API signals to the schedule entity; `version` is stamped on it when it is sent, and the API
    waits until the entity's state shows that version."""

    @property
    def version(self) -> str: ...

    def to_dict(self) -> dict[str, Any]: ...


Change = TypeVar("Change", bound=ScheduleChange)


def stamped(change: Change, version: str) -> Change:
    """`change` carrying `version` (the changes are frozen dataclasses)."""
    return dataclasses.replace(change, version=version)  # type: ignore[type-var]


@dataclass(frozen=True, slots=True)
class SchedulePut:
    """`put`: the schedule's whole definition (a create or a replace), its secure values sealed apart."""

    tenant: str
    schedule_id: str
    definition: Mapping[str, Any]
    sealed_secure_env: str | None
    at: str
    version: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "scheduleId": self.schedule_id,
            "definition": self.definition,
            "sealedSecureEnv": self.sealed_secure_env,
            "at": self.at,
            "version": self.version,
        }

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> SchedulePut:
        return cls(
            str(data["tenant"]),
            str(data["scheduleId"]),
            data["definition"],
            data.get("sealedSecureEnv"),
            str(data["at"]),
            str(data["version"]),
        )


@dataclass(frozen=True, slots=True)
class ChangeAt:
    """`suspend`, `resume` and `trigger`: the instant the change is for (a manual run's start, or when the
    schedule was suspended or resumed)."""

    at: str
    version: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.at, "version": self.version}

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> ChangeAt:
        return cls(str(data["at"]), str(data["version"]))


@dataclass(frozen=True, slots=True)
class ScheduleDelete:
    """`delete`: only the version (the entity forgets the rest)."""

    version: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version}

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> ScheduleDelete:
        return cls(str(data["version"]))


@dataclass(frozen=True, slots=True)
class ScheduleInput:
    """The schedule orchestration's input: whose schedule, and the last instant a wake-up considered."""

    tenant: str
    schedule_id: str
    cursor: str

    def to_dict(self) -> dict[str, Any]:
        return {"tenant": self.tenant, "scheduleId": self.schedule_id, "cursor": self.cursor}

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> ScheduleInput:
        return cls(str(data["tenant"]), str(data["scheduleId"]), str(data["cursor"]))


@dataclass(frozen=True, slots=True)
class RunRequest:
    """`run_scheduled_job`'s input: one run (the due tick or a manual one) with what deciding it needs."""

    tenant: str
    schedule_id: str
    scheduled_for: str
    kind: RunKind
    policy: ConcurrencyPolicy
    job: Mapping[str, Any]
    sealed_secure_env: str | None
    recent_jobs: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "scheduleId": self.schedule_id,
            "scheduledFor": self.scheduled_for,
            "kind": str(self.kind),
            "policy": str(self.policy),
            "job": self.job,
            "sealedSecureEnv": self.sealed_secure_env,
            "recentJobs": list(self.recent_jobs),
        }

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> RunRequest:
        return cls(
            str(data["tenant"]),
            str(data["scheduleId"]),
            str(data["scheduledFor"]),
            RunKind(data["kind"]),
            ConcurrencyPolicy(data["policy"]),
            data["job"],
            data.get("sealedSecureEnv"),
            tuple(data.get("recentJobs") or ()),
        )


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """What became of one run: submitted as `job_id`, or not and why; `replaced` names the jobs a `Replace`
    policy cancelled for it (sent only when there were some). `job_id` is None when the activity itself failed."""

    scheduled_for: str
    kind: RunKind
    job_id: str | None
    submitted: bool
    reason: str | None = None
    replaced: tuple[str, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "scheduledFor": self.scheduled_for,
            "kind": str(self.kind),
            "jobId": self.job_id,
            "submitted": self.submitted,
        }
        if self.reason is not None:
            data["reason"] = self.reason
        if self.replaced is not None:
            data["replaced"] = list(self.replaced)
        return data

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> RunOutcome:
        replaced = data.get("replaced")
        return cls(
            str(data["scheduledFor"]),
            RunKind(data["kind"]),
            data.get("jobId"),
            bool(data.get("submitted")),
            data.get("reason"),
            None if replaced is None else tuple(replaced),
        )

    def refused(self, reason: str | None) -> Self:
        """This run not submitted, for `reason` (every refusal has one)."""
        return dataclasses.replace(self, submitted=False, reason=reason)


@dataclass(frozen=True, slots=True)
class SkippedTick:
    """A due tick not run because it came too late (`catchUp: skip`)."""

    scheduled_for: str
    reason: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"scheduledFor": self.scheduled_for, "kind": str(RunKind.SCHEDULED), "reason": self.reason}


@dataclass(frozen=True, slots=True)
class WakeRecord:
    """`record`: what one wake-up did, sent only when it did something: its runs, the tick it skipped, how many
    ticks it found missed, and the manual runs it handled (the entity drops them from its waiting list)."""

    runs: Sequence[RunOutcome]
    skipped: SkippedTick | None
    missed: int
    triggers_done: Sequence[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "runs": [run.to_dict() for run in self.runs],
            "skipped": None if self.skipped is None else self.skipped.to_dict(),
            "missed": self.missed,
            "triggersDone": list(self.triggers_done),
        }
