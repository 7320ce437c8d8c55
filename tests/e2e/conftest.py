"""The local stack (aciemu + devhost running this app) for end-to-end tests, plus job helpers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from acibatch.aci import AciGateway, make_client
from localdev.client import BatchClient
from localdev.localstack import (
    EXAMPLE_WORKER_IMAGE,
    LOCAL_RESOURCE_GROUP,
    LOCAL_SUBSCRIPTION,
    LocalStack,
    local_stack,
)

TERMINAL = {"Succeeded", "Failed", "Cancelled"}

# Region limit for the engine tests: small enough that two tenants compete for it.
REGION_GROUPS = 5


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    data = tmp_path_factory.mktemp("stack")
    settings = {
        "BATCH_POLL_SECONDS": "1",
        "ACI_MAX_GROUPS": str(REGION_GROUPS),
        "ACI_MAX_CORES": str(REGION_GROUPS),
        # As a deployment runs once every worker has this build: jobs larger than the region start in waves.
        "BATCH_TASK_WAVES": "true",
        # Sweep every 2 s with no grace so the orphan test is quick; owned groups are never swept.
        "BATCH_SWEEP_SCHEDULE": "*/2 * * * * *",
        "BATCH_SWEEP_GRACE_SECONDS": "0",
    }
    with local_stack(data, settings=settings) as running:
        yield running


# devhost's idle-queue mode for the latency tests: the back-off of a scaled-out app's idle queues, with a
# short maximum so a test waits seconds, not the default 30 s.
QUEUE_MAX_POLL_SECONDS = 4.0


@pytest.fixture(scope="module")
def latency_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    data = tmp_path_factory.mktemp("latency-stack")
    settings = {
        "BATCH_POLL_SECONDS": "1",
        "DEVHOST_QUEUE_LATENCY": "idle",
        "DEVHOST_QUEUE_MAX_POLL_SECONDS": str(QUEUE_MAX_POLL_SECONDS),
    }
    with local_stack(data, settings=settings) as running:
        yield running


@pytest.fixture(scope="package")
def admin(stack: LocalStack) -> BatchClient:
    return BatchClient(stack.api_url, stack.admin_key)


@pytest.fixture(scope="package")
def gateway(stack: LocalStack) -> AciGateway:
    return AciGateway(
        make_client(LOCAL_SUBSCRIPTION, stack.aci_url, polling_interval=0.1, token=stack.aci_token),
        LOCAL_RESOURCE_GROUP,
    )


def make_tenant(admin: BatchClient, name: str, **quota: Any) -> BatchClient:
    created = admin.put_tenant(name, quota or {"maxGroups": 2, "maxCores": 2, "maxMemoryGb": 4, "weight": 1})
    assert created["created"] is True
    return BatchClient(admin.api_url, created["apiKey"])


def python_job(code: str, tasks: int = 1, **overrides: Any) -> dict[str, Any]:
    """A job whose containers run `python3 -c code` in the example worker image (its report helper importable)."""
    spec: dict[str, Any] = {
        "image": EXAMPLE_WORKER_IMAGE,
        "command": ["python3", "-c", code],
        "cpu": 1,
        "memoryGb": 1,
        "env": {},
        "taskCount": tasks,
        "maxAttempts": 2,
        "taskTimeoutSeconds": 60,
    }
    spec.update(overrides)
    return spec


def wait_job(client: BatchClient, job_id: str, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = client.job(job_id, limit=1000)
        if job["state"] in TERMINAL:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {job['state']} after {timeout} s: {job['counts']}")
        time.sleep(0.3)


def tasks_by_id(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {task["id"]: task for task in job["tasks"]}


def wait_no_groups(gateway: AciGateway, prefix: str = "", timeout: float = 20) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        left = [group.name for group in gateway.list_app_groups() if group.name.startswith(prefix)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.3)


def read_log(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""
