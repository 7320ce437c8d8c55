"""A schedule's durable identity (entity key, instance id, orchestration input) and the `schedule` entity's state
and operations."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BeforeValidator, ConfigDict, Field

from acibatch.models.base import StoredModel
from acibatch.scheduling.spec import ScheduleSpec

# A schedule's definition travels whole in Durable messages (the entity's state and answer, each tick's activity
# input), which Durable Task Scheduler caps at 1 MiB; this leaves room for the rest of each message.
MAX_DEFINITION_BYTES = 768 * 1024
MAX_PENDING_TRIGGERS = 10  # manual runs waiting for the next wake-up; more is a 409 (each one is one job)
RECENT_JOBS_KEPT = 20  # the jobs a schedule remembers, for its concurrency policy and `GET` (active jobs)


def definition_size(spec: ScheduleSpec) -> int:
    """Bytes of the definition as stored (compact JSON, UTF-8)."""
    return len(json.dumps(spec.to_dict(), separators=(",", ":"), ensure_ascii=False).encode())


def schedule_key(tenant: str, schedule_id: str) -> str:
    """The schedule entity's key; schedule ids hold no ':', so keys of different tenants never meet."""
    return f"{tenant}:{schedule_id}"


def schedule_instance_id(tenant: str, schedule_id: str) -> str:
    return f"schedule:{tenant}:{schedule_id}"


def schedule_input(tenant: str, schedule_id: str, cursor: str) -> dict[str, str]:
    """The schedule orchestration's input: whose schedule, and the last instant a wake-up considered."""
    return {"tenant": tenant, "scheduleId": schedule_id, "cursor": cursor}


def _counts(value: Any) -> dict[str, int]:
    # State stored before a counter existed reads it as 0.
    return {"submitted": 0, "skipped": 0, "missed": 0, **(value or {})}


def _or_empty(value: Any) -> Any:
    return [] if value is None else value


class ScheduleState(StoredModel):
    """The `schedule` entity's state: the definition (None once deleted), the suspend flag, manual runs not
    started yet, and what the schedule did last (for `GET`). `version` is the last API change applied, so the
    API can tell when its signal took effect."""

    model_config = ConfigDict(frozen=False)  # the entity applies each operation to it in place

    tenant: str = ""
    schedule_id: str = ""
    definition: dict[str, Any] | None = None
    sealed_secure_env: str | None = None
    version: str = ""
    created_at: str | None = None
    updated_at: str | None = None
    suspended: bool = False
    triggers: Annotated[list[str], BeforeValidator(_or_empty)] = Field(default_factory=list)
    last_run: dict[str, Any] | None = None
    last_skip: dict[str, Any] | None = None
    recent_jobs: Annotated[list[str], BeforeValidator(_or_empty)] = Field(default_factory=list)
    counts: Annotated[dict[str, int], BeforeValidator(_counts)] = Field(default_factory=lambda: _counts(None))

    @property
    def exists(self) -> bool:
        return self.definition is not None

    def spec(self) -> ScheduleSpec:
        assert self.definition is not None
        return ScheduleSpec.from_dict(self.definition)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> ScheduleState:
        return cls.model_validate(data) if data else cls()


def apply_schedule_operation(state: ScheduleState, operation: str, data: Any) -> tuple[ScheduleState, Any]:
    """The entity's operations; returns the new state and the operation's result."""
    if operation == "get":
        return state, state.to_dict()
    if operation == "put":
        fresh = state if state.exists else ScheduleState(created_at=data["at"])
        fresh.tenant, fresh.schedule_id = data["tenant"], data["scheduleId"]
        fresh.definition, fresh.sealed_secure_env = data["definition"], data.get("sealedSecureEnv")
        fresh.suspended = bool(data["definition"].get("suspend", False))
        fresh.updated_at, fresh.version = data["at"], data["version"]
        return fresh, None
    if operation == "delete":
        return ScheduleState(version=data["version"]), None
    if not state.exists:
        return state, None  # suspend/resume/trigger of a deleted schedule change nothing
    if operation in ("suspend", "resume"):
        state.suspended = operation == "suspend"
        state.updated_at, state.version = data["at"], data["version"]
        return state, None
    if operation == "trigger":
        if data["at"] not in state.triggers and len(state.triggers) < MAX_PENDING_TRIGGERS:
            state.triggers.append(data["at"])
        state.version = data["version"]
        return state, None
    if operation == "record":
        return record_wake(state, data), None
    raise ValueError(f"schedule entity has no operation '{operation}'")


def record_wake(state: ScheduleState, data: Mapping[str, Any]) -> ScheduleState:
    """What one wake-up of the orchestration did: runs submitted or skipped, ticks missed, triggers handled."""
    done = set(data.get("triggersDone") or [])
    state.triggers = [at for at in state.triggers if at not in done]
    state.counts["missed"] += int(data.get("missed", 0))
    skipped = data.get("skipped")
    if skipped:
        state.counts["skipped"] += 1
        state.last_skip = dict(skipped)
    for run in data.get("runs") or []:
        if run.get("jobId") and run.get("submitted"):
            state.counts["submitted"] += 1
            state.last_run = dict(run)
            if run["jobId"] not in state.recent_jobs:
                state.recent_jobs = [*state.recent_jobs, run["jobId"]][-RECENT_JOBS_KEPT:]
        else:
            state.counts["skipped"] += 1
            state.last_skip = dict(run)
    return state
