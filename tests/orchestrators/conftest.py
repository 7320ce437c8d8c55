"""Inputs for the orchestrator tests, built the way the API builds them (a validated spec, then the plan)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from acibatch.plan import JobInput, TaskInput, task_inputs
from acibatch.spec import parse_job_spec

TENANT = "team-a"
JobFactory = Callable[..., JobInput]
TaskFactory = Callable[..., TaskInput]


def job_input(**spec: Any) -> JobInput:
    """A job of three tasks unless `spec` says otherwise; secrets are never part of orchestration inputs."""
    parsed = parse_job_spec({"jobId": "j1", "image": "registry.example.com/team/worker:1", "taskCount": 3, **spec})
    stored = parsed.to_dict()
    stored["secureEnv"] = {}
    return JobInput(
        tenant=TENANT,
        job_id=str(parsed.job_id),
        spec=stored,
        sealed_secure_env=None,
        fingerprint=parsed.fingerprint(),
        submitted_at="2026-01-05T08:59:00.000000Z",
        poll_seconds=30.0,
    )


@pytest.fixture
def make_job() -> JobFactory:
    return job_input


@pytest.fixture
def make_task() -> TaskFactory:
    def make(**spec: Any) -> TaskInput:
        job = job_input(taskCount=1, **spec)
        return task_inputs(job, job.job_spec(), 0, 1)[0]

    return make
