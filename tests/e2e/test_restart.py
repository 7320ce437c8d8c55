"""`acibatch up` survives its own restart on the same data folder (Ctrl-C, start again), as a user runs it.

Run 1 starts a 40-task job and a 20-task job with secureEnv and is interrupted mid-job; run 2 on the same
folder finishes both with no task needing a second attempt and no container group left behind. Runs 3 and 4
rotate the callback signing key: with the old key as BATCH_CALLBACK_SIGNING_KEY_PREVIOUS a job sealed before
the rotation finishes; rotating again without it fails that job's unstarted tasks at once with a message
about the keys, not after ACI-style retries.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from acibatch.aci import AciGateway, make_client
from aciemu import auth as aciemu_auth
from devhost.launcher import free_port
from localdev.client import BatchClient
from localdev.localstack import EXAMPLE_WORKER_IMAGE, LOCAL_RESOURCE_GROUP, LOCAL_SUBSCRIPTION

from .conftest import TERMINAL

pytestmark = pytest.mark.e2e
SECURE_VALUE = secrets.token_hex(16)
# Each task sleeps, so a job is still running when the stack is interrupted, then reports its index.
SLEEPER = (
    "import os, time, acibatch_report as r; time.sleep({seconds}); r.succeeded({{'i': os.environ['BATCH_TASK_INDEX']}})"
)
# The secure value must reach the container intact after a restart (it is compared by hash: no secret in the spec).
CHECKER = (
    "import hashlib, os, time, acibatch_report as r; time.sleep({seconds}); "
    "ok = hashlib.sha256(os.environ['API_TOKEN'].encode()).hexdigest() == '{digest}'; "
    "r.succeeded({{'ok': True}}) if ok else r.failed('the secure value changed', 3)"
)


@dataclass
class Up:
    """One `acibatch up` run: its admin key and everything it printed (drained by a thread)."""

    process: subprocess.Popen[str]
    admin_key: str = ""
    api_url: str = ""
    aci_url: str = ""
    lines: list[str] = field(default_factory=list)


@contextmanager
def acibatch_up(data: Path, port: int, env: dict[str, str] | None = None) -> Iterator[Up]:
    # Without Azurite (blob storage off), as before issue 24: this test is about restarts, not files.
    command = [sys.executable, "-m", "localdev.cli", "up", "--port", str(port), "--data", str(data), "--no-storage"]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, **(env or {})}
    )
    run = Up(process)
    started = threading.Event()

    def drain() -> None:  # the log follower never blocks on a full pipe
        assert process.stdout is not None
        for line in process.stdout:
            run.lines.append(line)
            started.set() if "Ctrl-C stops everything" in line else None
        started.set()

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        assert started.wait(90) and process.poll() is None, "".join(run.lines)
        said = {line[:15].strip(): line.split()[-1] for line in run.lines if len(line.split()) >= 3}
        run.api_url, run.aci_url, run.admin_key = said["acibatch API"], said["ACI emulator"], said["admin key"]
        yield run
    finally:
        process.send_signal(signal.SIGINT)  # what Ctrl-C sends
        process.wait(timeout=90)
        reader.join(10)
        assert process.stdout is not None
        process.stdout.close()
    assert process.returncode == 0, "".join(run.lines[-30:])


def up_once(port: int, data: Path) -> subprocess.CompletedProcess[str]:
    """`acibatch up` expected to refuse to start."""
    command = [sys.executable, "-m", "localdev.cli", "up", "--port", str(port), "--data", str(data)]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def counts(client: BatchClient, job_id: str) -> dict[str, int]:
    result: dict[str, int] = client.job(job_id, limit=0)["counts"]
    return result


def wait_until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.3)


def finished(client: BatchClient, job_id: str, timeout: float = 240) -> dict[str, Any]:
    wait_until(lambda: client.job(job_id, limit=0)["state"] in TERMINAL, timeout, f"{job_id} did not finish")
    job: dict[str, Any] = client.job(job_id, limit=0)
    job["tasks"] = client.all_tasks(job_id)
    return job


def job(job_id: str, code: str, tasks: int, **extra: Any) -> dict[str, Any]:
    return {"jobId": job_id, "image": EXAMPLE_WORKER_IMAGE, "command": ["python3", "-c", code], "cpu": 0.5,
            "memoryGb": 0.5, "taskCount": tasks, "maxAttempts": 3, "taskTimeoutSeconds": 300, **extra}  # fmt: skip


def groups_left(aci_url: str, data: Path) -> list[str]:
    # The token aciemu made in the stack's data folder on the first start, and kept across the restart.
    token = aciemu_auth.read(data / "aciemu")
    client = make_client(LOCAL_SUBSCRIPTION, aci_url, polling_interval=0.1, token=token)
    gateway = AciGateway(client, LOCAL_RESOURCE_GROUP)
    return [group.name for group in gateway.list_app_groups()]


@pytest.mark.timeout(900)
def test_acibatch_up_survives_its_own_restart_and_a_key_rotation(tmp_path: Path) -> None:
    data, port = tmp_path / "stack", free_port()
    digest = hashlib.sha256(SECURE_VALUE.encode()).hexdigest()
    env = {"BATCH_POLL_SECONDS": "2"}  # honoured: the stack's default is 5

    # Run 1: both jobs start; Ctrl-C while they are mid-way.
    with acibatch_up(data, port, env) as first:
        admin = BatchClient(first.api_url, first.admin_key)
        key = admin.put_tenant("restarts", {"maxGroups": 6, "maxCores": 6, "maxMemoryGb": 6})["apiKey"]
        tenant = BatchClient(first.api_url, key)
        tenant.submit(job("plain", SLEEPER.format(seconds=1.5), 40))
        tenant.submit(
            job("secure", CHECKER.format(seconds=1.5, digest=digest), 20, secureEnv={"API_TOKEN": SECURE_VALUE})
        )
        wait_until(lambda: counts(tenant, "plain")["Succeeded"] >= 4, 120, "no task of run 1 finished")
        devhost_pid = next(p for p in Path("/proc").iterdir() if p.name.isdigit() and _is_devhost(p, data))
        assert b"BATCH_POLL_SECONDS=2" in (devhost_pid / "environ").read_bytes().split(b"\0")
        assert counts(tenant, "plain")["Succeeded"] < 40  # interrupted mid-job
    keys = data / "secrets.json"
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    stored = keys.read_text()
    log_size = (data / "devhost.log").stat().st_size

    # Run 2: same folder, same keys; both jobs finish with every task on its first attempt.
    with acibatch_up(data, port, env) as second:
        assert second.admin_key == first.admin_key
        tenant = BatchClient(second.api_url, key)
        for job_id, size in (("plain", 40), ("secure", 20)):
            done = finished(tenant, job_id)
            assert done["state"] == "Succeeded", [(t["id"], t["error"]) for t in done["tasks"] if t["error"]][:3]
            assert len(done["tasks"]) == size
            assert [t["id"] for t in done["tasks"] if t["attempts"] != 1] == []
        assert all(t["result"] == {"ok": True} for t in finished(tenant, "secure")["tasks"])
        wait_until(lambda: groups_left(second.aci_url, data) == [], 30, "container groups left in aciemu")
        # Another stack on the same port or the same folder is refused with one line, not a traceback.
        busy = up_once(port, tmp_path / "other")
        assert busy.returncode == 1 and f"port {port}" in busy.stderr and "Traceback" not in busy.stderr
        assert len(busy.stderr.strip().splitlines()) == 1
        same = up_once(free_port(), data)
        assert same.returncode == 1 and "in use by another local stack" in same.stderr, same.stderr
        # A job for the rotation: one task at a time, so most of it is still queued at the next Ctrl-C.
        slow = BatchClient(second.api_url, admin.put_tenant("rotation", {"maxGroups": 1, "maxCores": 1})["apiKey"])
        slow.submit(job("rotated", CHECKER.format(seconds=2, digest=digest), 4, secureEnv={"API_TOKEN": SECURE_VALUE}))
        wait_until(lambda: counts(slow, "rotated")["Succeeded"] >= 1, 60, "the rotation job did not start")
    # Run 2 printed only its own log lines, not run 1's again.
    assert sum("devhost: listening on" in line for line in second.lines) == 1
    assert (data / "secrets.json").read_text() == stored and log_size > 0

    # Run 3: a new signing key, the old one as the previous: the job sealed under the old key still finishes.
    old_key = json.loads(stored)["BATCH_CALLBACK_SIGNING_KEY"]
    rotated = {"BATCH_CALLBACK_SIGNING_KEY": secrets.token_hex(32), "BATCH_CALLBACK_SIGNING_KEY_PREVIOUS": old_key}
    with acibatch_up(data, port, {**env, **rotated}) as third:
        slow = BatchClient(third.api_url, slow.key)
        done = finished(slow, "rotated")
        assert done["state"] == "Succeeded", [t["error"] for t in done["tasks"]]
        slow.submit(job("twice", CHECKER.format(seconds=2, digest=digest), 4, secureEnv={"API_TOKEN": SECURE_VALUE}))
        wait_until(lambda: counts(slow, "twice")["Succeeded"] >= 1, 60, "the second rotation job did not start")
    assert old_key in (data / "secrets.json").read_text()  # keys from the environment are never stored

    # Run 4: rotated again without the previous key: the unstarted tasks cannot be unsealed and fail at once.
    with acibatch_up(data, port, {**env, "BATCH_CALLBACK_SIGNING_KEY": secrets.token_hex(32)}) as fourth:
        slow = BatchClient(fourth.api_url, slow.key)
        done = finished(slow, "twice", timeout=120)
    errors = [t["error"] or "" for t in done["tasks"] if t["state"] == "Failed"]
    assert done["state"] == "Failed" and errors
    assert all("secure env values" in e and "BATCH_CALLBACK_SIGNING_KEY_PREVIOUS" in e for e in errors), errors
    assert not any("ACI kept failing" in e for e in errors), errors


def _is_devhost(proc: Path, data: Path) -> bool:
    try:
        command = (proc / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"devhost" in command and str(data / "devhost").encode() in command
