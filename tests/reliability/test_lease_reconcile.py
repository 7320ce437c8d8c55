"""A leaked capacity lease is reclaimed by the sweep, on the local stack.

The leak is forced the way it happens in Azure: the task orchestration holding the tenant's only group is
terminated through the Durable HTTP API, so it never releases its lease. Without reconciliation the tenant's
`running.groups` would stay 1 and its next task would wait forever; the sweep must give the lease back,
the queued task must then run, and the terminated task's container group must be deleted as an orphan.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from acibatch import durable_names as names
from acibatch.aci import AciGateway, make_client
from acibatch.naming import container_group_name, task_instance_id
from acibatch.reconcile import ReclaimReason
from localdev.client import BatchClient
from localdev.localstack import (
    EXAMPLE_WORKER_IMAGE,
    LOCAL_RESOURCE_GROUP,
    LOCAL_SUBSCRIPTION,
    LocalStack,
    local_stack,
)

pytestmark = pytest.mark.e2e
TENANT = "leaky"
SETTINGS = {
    "BATCH_POLL_SECONDS": "1",
    # Sweep every 2 s with no grace, so the test takes seconds; a live task's lease is never stale.
    "BATCH_SWEEP_SCHEDULE": "*/2 * * * * *",
    "BATCH_SWEEP_GRACE_SECONDS": "0",
}


def spec(job_id: str, code: str) -> dict[str, Any]:
    return {
        "jobId": job_id, "image": EXAMPLE_WORKER_IMAGE, "command": ["python3", "-c", code], "cpu": 1,
        "memoryGb": 1, "taskCount": 1, "maxAttempts": 1, "taskTimeoutSeconds": 600,
    }  # fmt: skip


def durable(stack: LocalStack, path: str, method: str = "GET", body: Any = None) -> Any:
    """Devhost's Durable HTTP API, with the extension's system key as the real host requires."""
    url = f"{stack.host_url}/runtime/webhooks/durabletask/{path}"
    headers = {"x-functions-key": stack.durable_key, "Content-Type": "application/json"}
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read()
    return json.loads(body) if body else None


def wait_for(what: str, check: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def test_the_sweep_reclaims_a_terminated_tasks_lease_and_the_queue_moves_on(tmp_path: Path) -> None:
    with local_stack(tmp_path / "stack", settings=SETTINGS) as stack:
        admin = BatchClient(stack.api_url, stack.admin_key)
        quota = {"maxGroups": 1, "maxCores": 1, "maxMemoryGb": 4, "weight": 1}
        client = BatchClient(stack.api_url, admin.put_tenant(TENANT, quota)["apiKey"])

        client.submit(spec("hold", "import time; time.sleep(600)"))
        wait_for("the first task to run", lambda: client.job("hold")["counts"]["Running"] == 1)
        client.submit(spec("after", "import acibatch_report as r; r.succeeded({'ran': True})"))
        # The tenant's one group is taken, so the second task waits in the queue, and stays there while the
        # sweeps run (its owner and the running lease's owner are both alive).
        wait_for("the second task to queue", lambda: admin.get_tenant(TENANT)["queued"] == 1)
        time.sleep(5)
        tenant = admin.get_tenant(TENANT)
        assert tenant["running"]["groups"] == 1 and tenant["queued"] == 1
        assert client.job("after")["state"] == "Queued"

        task_id = client.job("hold")["tasks"][0]["id"]
        owner = task_instance_id(TENANT, "hold", task_id)
        durable(stack, f"instances/{quote(owner, safe='')}/terminate?reason=forced-leak", method="POST")
        terminated = lambda: durable(stack, f"instances/{quote(owner, safe='')}")["runtimeStatus"] == "Terminated"  # noqa: E731
        wait_for("the termination", terminated, timeout=20)

        # The sweep hands the leaked group to the waiting task, which runs to success.
        def after_finished() -> dict[str, Any] | None:
            job: dict[str, Any] = client.job("after")
            return job if job["state"] in ("Succeeded", "Failed", "Cancelled") else None

        job = wait_for("the queued task to finish", after_finished, timeout=90)
        assert job["state"] == "Succeeded", job
        assert job["tasks"][0]["result"] == {"ran": True}

        def settled() -> dict[str, Any] | None:
            info: dict[str, Any] = admin.get_tenant(TENANT)
            return info if info["running"]["groups"] == 0 and info["queued"] == 0 else None

        info = wait_for("every lease to be released", settled, timeout=30)
        assert info["usage"]["tasks"]["succeeded"] == 1

        # The reclaim orchestration says what it did and why.
        reclaim = durable(stack, f"instances/{quote(names.RECLAIM_INSTANCE, safe='')}?showInput=true")
        assert reclaim["runtimeStatus"] == "Completed"
        assert reclaim["output"]["released"] == [f"{owner}#1"]
        # The Python client posts its input already JSON-encoded, so the status shows it as a JSON string.
        given = json.loads(reclaim["input"]) if isinstance(reclaim["input"], str) else reclaim["input"]
        assert [(item["leaseId"], item["reason"]) for item in given] == [
            (f"{owner}#1", str(ReclaimReason.OWNER_TERMINATED))
        ]
        assert f"{task_instance_id(TENANT, 'after', task_id)}#1" in reclaim["output"]["granted"]

        # And the terminated task's container group went as an orphan.
        gateway = AciGateway(
            make_client(LOCAL_SUBSCRIPTION, stack.aci_url, polling_interval=0.1, token=stack.aci_token),
            LOCAL_RESOURCE_GROUP,
        )
        orphan = container_group_name(TENANT, "hold", task_id, 1)
        gone = lambda: orphan not in [group.name for group in gateway.list_app_groups()]  # noqa: E731
        assert wait_for("the orphan group to be deleted", gone, timeout=30)


def test_a_lease_whose_owner_does_not_exist_is_reclaimed(tmp_path: Path) -> None:
    """The owner of a lease is gone without a trace (its history purged): the status API answers 404, which is
    the only answer that makes an owner unknown. The lease is put straight into the capacity entity through the
    Durable HTTP API's entity signal, as a task of a purged instance would have left it."""
    with local_stack(tmp_path / "stack", settings=SETTINGS) as stack:
        admin = BatchClient(stack.api_url, stack.admin_key)
        admin.put_tenant(TENANT, {"maxGroups": 1, "maxCores": 1, "maxMemoryGb": 4, "weight": 1})
        ghost = task_instance_id(TENANT, "purged", "0")
        lease = f"{ghost}#1"
        request = {"leaseId": lease, "tenant": TENANT, "cores": 1, "memoryGb": 1, "requestedAt": time.time() - 60}
        # As JSON text, the way the Python client sends an operation's input: the SDK's entity side decodes the
        # input twice (`DurableEntityContext.get_input`), so a bare JSON object would fail the operation.
        signal = f"entities/{names.CAPACITY_ENTITY}/{names.CAPACITY_KEY}?op=acquire"
        durable(stack, signal, "POST", json.dumps(request))

        def reclaimed() -> dict[str, Any] | None:
            try:
                status: dict[str, Any] = durable(
                    stack, f"instances/{quote(names.RECLAIM_INSTANCE, safe='')}?showInput=true"
                )
            except urllib.error.HTTPError:
                return None  # not started yet
            return status if status["runtimeStatus"] == "Completed" else None

        reclaim = wait_for("the reclaim of the ownerless lease", reclaimed, timeout=30)
        given = json.loads(reclaim["input"]) if isinstance(reclaim["input"], str) else reclaim["input"]
        assert [(item["leaseId"], item["reason"]) for item in given] == [(lease, str(ReclaimReason.OWNER_UNKNOWN))]
        assert reclaim["output"]["released"] == [lease]
        tenant = admin.get_tenant(TENANT)
        assert tenant["running"]["groups"] == 0 and tenant["queued"] == 0
