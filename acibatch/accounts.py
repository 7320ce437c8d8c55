"""Per-tenant accounting held by each tenant's entity: quota and key hash, usage, task outcomes and the job index.

Configuration and bookkeeping, not scheduling (that is `acibatch.tenancy`). All functions are pure: they return
new state and never read a clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from acibatch.leases import Quota

RECENT_LEASES_KEPT = 2000

OUTCOMES = ("succeeded", "failed", "cancelled")


@dataclass
class TenantState:
    quota: Quota | None = None
    api_key_hash: str | None = None
    core_seconds: float = 0.0
    gb_seconds: float = 0.0
    task_counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)  # insertion order = submission order
    recent_leases: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "quota": None if self.quota is None else self.quota.to_dict(),
            "apiKeyHash": self.api_key_hash,
            "coreSeconds": self.core_seconds,
            "gbSeconds": self.gb_seconds,
            "taskCounts": self.task_counts,
            "jobs": list(self.jobs.values()),
            "recentLeases": self.recent_leases,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> TenantState:
        if not data:
            return cls()
        quota = data.get("quota")
        return cls(
            quota=None if quota is None else Quota.from_dict(quota),
            api_key_hash=data.get("apiKeyHash"),
            core_seconds=float(data.get("coreSeconds", 0.0)),
            gb_seconds=float(data.get("gbSeconds", 0.0)),
            task_counts={**dict.fromkeys(OUTCOMES, 0), **data.get("taskCounts", {})},
            jobs={job["jobId"]: dict(job) for job in data.get("jobs", [])},
            recent_leases=list(data.get("recentLeases", [])),
        )


def _clone(state: TenantState) -> TenantState:
    # Job records are replaced, never changed in place, so copying the containers is enough.
    return TenantState(
        quota=state.quota,
        api_key_hash=state.api_key_hash,
        core_seconds=state.core_seconds,
        gb_seconds=state.gb_seconds,
        task_counts=dict(state.task_counts),
        jobs=dict(state.jobs),
        recent_leases=list(state.recent_leases),
    )


def configure_tenant(state: TenantState, quota: Quota, api_key_hash: str | None) -> TenantState:
    new = _clone(state)
    new.quota = quota
    if api_key_hash is not None:
        new.api_key_hash = api_key_hash
    return new


def record_usage(state: TenantState, lease_id: str, cores: float, memory_gb: float, seconds: float) -> TenantState:
    """Add one lease's usage once. Duplicates of a release arrive close together (at-least-once delivery
    of the same step), so remembering the most recent lease ids is enough and keeps the state bounded."""
    if lease_id in state.recent_leases:
        return state
    new = _clone(state)
    new.core_seconds += cores * max(0.0, seconds)
    new.gb_seconds += memory_gb * max(0.0, seconds)
    new.recent_leases = [*new.recent_leases, lease_id][-RECENT_LEASES_KEPT:]
    return new


def count_task(state: TenantState, outcome: str) -> TenantState:
    key = outcome.lower()
    if key not in OUTCOMES:
        raise ValueError(f"unknown task outcome '{outcome}'")
    new = _clone(state)
    new.task_counts[key] = new.task_counts.get(key, 0) + 1
    return new


def register_job(state: TenantState, job_id: str, created_at: str, fingerprint: str) -> TenantState:
    if job_id in state.jobs:
        return state
    new = _clone(state)
    new.jobs[job_id] = {
        "jobId": job_id,
        "state": "Queued",
        "createdAt": created_at,
        "finishedAt": None,
        "fingerprint": fingerprint,
    }
    return new


def update_job(state: TenantState, job_id: str, job_state: str, finished_at: str | None = None) -> TenantState:
    new = _clone(state)
    job = dict(new.jobs.get(job_id) or {"jobId": job_id, "createdAt": None, "fingerprint": None})
    if job.get("finishedAt") is None:  # a finished job's record never goes back to Running
        job["state"] = job_state
        job["finishedAt"] = finished_at
    new.jobs[job_id] = job
    return new


def list_jobs(
    state: TenantState, state_filter: str | None, offset: int, limit: int
) -> tuple[list[dict[str, Any]], int]:
    """Newest first, optionally filtered by state; returns the page and the filtered total."""
    jobs = [
        {key: value for key, value in job.items() if key != "fingerprint"}
        for job in reversed(state.jobs.values())
        if state_filter is None or job.get("state") == state_filter
    ]
    return jobs[offset : offset + limit], len(jobs)
