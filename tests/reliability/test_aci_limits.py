"""Issue 21: tasks queue under ACI's real subscription limits instead of failing, on the local stack.

aciemu enforces the limits (create rate windows answered with ARM's 429 and Retry-After, Spot quota, regions
without Spot) with short windows so the tests take seconds; the app's admission (`ACI_CREATE_LIMITS`) is set to
the same windows, or deliberately not, to show that ARM's 429s alone still end in waiting, never in failures.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from localdev.client import BatchClient
from tests.reliability.test_crash_and_faults import Stack, job, stack, wait_done

pytestmark = pytest.mark.e2e

QUICK = "import acibatch_report as r; r.succeeded()"
REGION = {"ACI_MAX_GROUPS": "60", "ACI_MAX_CORES": "60", "ACI_MAX_SPOT_CORES": "60"}


def tenant(running: Stack, name: str, groups: int = 60) -> BatchClient:
    admin = BatchClient(running.api, running.settings["BATCH_ADMIN_KEY"])
    key = admin.put_tenant(name, {"maxGroups": groups, "maxCores": groups, "maxMemoryGb": 4 * groups})["apiKey"]
    return BatchClient(running.api, key)


def watch_pending(client: BatchClient, until_done: float) -> tuple[dict[str, Any], set[str]]:
    """Poll the job until it ends; returns its final body and every pendingReason seen on the way."""
    seen: set[str] = set()
    deadline = time.monotonic() + until_done
    while True:
        body: dict[str, Any] = client.job("work", limit=1000)
        seen.update(task["pendingReason"] for task in body["tasks"] if task.get("pendingReason"))
        if body["state"] in {"Succeeded", "Failed", "Cancelled"}:
            return body, seen
        assert time.monotonic() < deadline, f"the job did not finish: {body['counts']}"
        time.sleep(0.5)


def test_a_300_task_job_under_a_100_creates_per_window_limit_completes(tmp_path: Path) -> None:
    window = "100/10"
    settings = {**REGION, "ACI_CREATE_LIMITS": window}
    with stack(tmp_path, ["--create-window", window], settings) as running:
        client = tenant(running, "ratelimited")
        started = time.monotonic()
        client.submit(job(300, QUICK, cpu=0.25, memoryGb=0.5))
        body, pending = watch_pending(client, until_done=240)
        elapsed = time.monotonic() - started
        assert body["state"] == "Succeeded", body["counts"]
        assert all(task["state"] == "Succeeded" and task["attempts"] == 1 for task in body["tasks"])
        assert elapsed >= 20  # 300 creates through 100-per-10-s windows take two full windows at least
        assert any(reason.startswith("create rate") for reason in pending), pending
        # The app's own admission keeps ARM's 429s rare: a create runs a little after its slot, so a few can meet
        # a full window and wait out its Retry-After.
        throttled = [task["id"] for task in body["tasks"] if "ResourceRequestsThrottled" in (task["error"] or "")]
        assert len(throttled) <= 30, throttled


def test_arm_429s_alone_make_tasks_wait_not_fail(tmp_path: Path) -> None:
    # The app believes creates are unlimited; only aciemu's 429s with Retry-After hold them back.
    settings = {**REGION, "ACI_CREATE_LIMITS": "100000/60"}
    with stack(tmp_path, ["--create-window", "15/4"], settings) as running:
        client = tenant(running, "throttled")
        client.submit(job(45, QUICK, cpu=0.25, memoryGb=0.5))
        body, pending = watch_pending(client, until_done=180)
        assert body["state"] == "Succeeded", body["counts"]
        assert all(task["attempts"] == 1 for task in body["tasks"])  # waiting never used up an attempt
        assert any(reason.startswith("ARM throttled the create") for reason in pending) or any(
            "ResourceRequestsThrottled" in (task["error"] or "") for task in body["tasks"]
        ), pending


@pytest.mark.parametrize(
    ("emulator_args", "why"),
    [(["--spot-cores", "0"], "Spot quota of 0"), (["--spot-locations", "eastus2"], "no Spot in the region")],
)
def test_spot_the_region_cannot_give_falls_back_to_regular(tmp_path: Path, emulator_args: list[str], why: str) -> None:
    with stack(tmp_path, emulator_args, REGION) as running:
        client = tenant(running, "spotty")
        client.submit(job(3, QUICK, priority="Spot", spotFallback=True))
        body = wait_done(client, timeout=90)
        assert body["state"] == "Succeeded", (why, body["tasks"])
        for task in body["tasks"]:
            assert task["attempts"] == 2 and "falling back to Regular" in task["error"], (why, task)


def test_a_spot_task_the_app_may_never_give_spot_cores_runs_as_regular_at_once(tmp_path: Path) -> None:
    with stack(tmp_path, [], {**REGION, "ACI_MAX_SPOT_CORES": "0"}) as running:
        client = tenant(running, "nospot")
        client.submit(job(2, QUICK, priority="Spot", spotFallback=True))
        body = wait_done(client, timeout=60)
        assert body["state"] == "Succeeded"
        for task in body["tasks"]:
            assert task["attempts"] == 1 and "falling back to Regular" in task["error"], task


def test_deletes_are_admitted_within_acis_delete_windows(tmp_path: Path) -> None:
    window = "10/4"
    settings = {**REGION, "ACI_DELETE_LIMITS": window}
    with stack(tmp_path, ["--delete-window", window], settings) as running:
        client = tenant(running, "deleting")
        started = time.monotonic()
        client.submit(job(30, QUICK, cpu=0.25, memoryGb=0.5))
        body, _ = watch_pending(client, until_done=180)
        assert body["state"] == "Succeeded", body["counts"]
        assert time.monotonic() - started >= 8  # 30 deletes through 10-per-4-s windows take two windows at least
        throttled = [task["id"] for task in body["tasks"] if "throttl" in (task["error"] or "").lower()]
        assert throttled == []  # the app's admission kept every delete inside the windows: no 429 left behind
        deadline = time.monotonic() + 30
        while running.gateway().list_app_groups() and time.monotonic() < deadline:
            time.sleep(0.3)
        assert running.gateway().list_app_groups() == []


def test_a_spot_task_without_fallback_waits_for_spot_quota_instead_of_failing(tmp_path: Path) -> None:
    with stack(tmp_path, ["--spot-cores", "0"], REGION) as running:
        client = tenant(running, "patient")
        client.submit(job(1, QUICK, priority="Spot", spotFallback=False))
        deadline = time.monotonic() + 60
        while True:
            task = client.job("work")["tasks"][0]
            if (task.get("pendingReason") or "").startswith("ACI quota"):
                break
            assert task["state"] not in {"Failed", "Succeeded"}, task
            assert time.monotonic() < deadline, task
            time.sleep(0.5)
        assert task["state"] == "Queued" and "ContainerGroupQuotaReached" in task["pendingReason"]
        client.cancel("work")
        body = wait_done(client, timeout=60)
        assert (body["state"], body["tasks"][0]["state"]) == ("Cancelled", "Cancelled")
