"""Every job in examples/ runs to success on the local stack, unchanged, with the results its task computes.

The example image name is only a name locally: examples/images.json maps it to examples/worker, which the
emulator shows read-only at /app (the image's WORKDIR), and gives its default command.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localdev.client import BatchClient
from localdev.localstack import REPO_ROOT, local_stack

from .conftest import make_tenant, wait_job

pytestmark = pytest.mark.e2e
EXAMPLES = REPO_ROOT / "examples"
# Seconds per example: the fan-out runs 2000 containers on this machine's two cores.
TIMEOUTS = {"small-job.json": 120, "spot-job.json": 120, "fanout-job.json": 540}
# Run elsewhere: they need blob storage and an uploaded input set (the demo's tenant gamma runs this one unchanged
# and checks its outputs: tests/e2e/test_demo.py).
STORAGE_EXAMPLES = ("files-job.json",)
# A region (and tenant) wide enough for the fan-out to keep both cores busy; the package's stack has 5 slots.
SLOTS = 20


@pytest.fixture(scope="module")
def examples_admin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BatchClient]:
    settings = {"BATCH_POLL_SECONDS": "1", "ACI_MAX_GROUPS": str(SLOTS), "ACI_MAX_CORES": str(SLOTS)}
    with local_stack(tmp_path_factory.mktemp("examples"), settings=settings) as stack:
        yield BatchClient(stack.api_url, stack.admin_key)


def squares(low: int, high: int) -> int:
    """The sum of x*x for low <= x <= high, in closed form."""

    def upto(n: int) -> int:
        return n * (n + 1) * (2 * n + 1) // 6

    return upto(high) - upto(low - 1)


def expected_range(spec: dict[str, Any], task: dict[str, Any], index: int) -> tuple[int, int]:
    """What task.py computes from N and SLICES, with the task's own env overrides (as the worker sees them)."""
    overrides = next((t.get("env", {}) for t in spec.get("tasks", []) if t["id"] == task["id"]), {})
    env = {**spec.get("env", {}), **overrides}
    n, slices = int(env["N"]), int(env["SLICES"])
    return index * n // slices + 1, (index + 1) * n // slices


def test_the_examples_folder_is_what_this_test_covers() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*-job.json")) == sorted((*TIMEOUTS, *STORAGE_EXAMPLES))


@pytest.mark.timeout(600)
@pytest.mark.parametrize("example", sorted(TIMEOUTS))
def test_example_job_runs_to_success(examples_admin: BatchClient, example: str) -> None:
    spec = json.loads((EXAMPLES / example).read_text())
    quota = {"maxGroups": SLOTS, "maxCores": SLOTS, "maxMemoryGb": 2 * SLOTS, "weight": 1}
    tenant = make_tenant(examples_admin, f"ex-{Path(example).stem}", **quota)
    tenant.submit(spec)
    job = wait_job(tenant, spec["jobId"], timeout=TIMEOUTS[example])
    tasks = tenant.all_tasks(spec["jobId"])
    failed = [(t["id"], t["state"], t.get("error")) for t in tasks if t["state"] != "Succeeded"]
    assert job["state"] == "Succeeded", failed[:3]
    count = spec.get("taskCount") or len(spec["tasks"])
    assert len(tasks) == count
    order = [t["id"] for t in spec["tasks"]] if "tasks" in spec else [str(i) for i in range(count)]
    for task in tasks:
        low, high = expected_range(spec, task, order.index(task["id"]))
        assert task["result"] == {"partial": squares(low, high), "range": [low, high]}, task["id"]
