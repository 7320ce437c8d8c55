"""A re-run of the create activity for an agent task (Durable runs activities at least once) against aciemu, with
the agent's SAS minted against Azurite: ACI restarts a running group on any PUT of its name, so the gateway looks
first and leaves the group this very request made running; a different request of the same name is still PUT."""

from __future__ import annotations

import dataclasses
import json
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from acibatch.aci import AciGateway, GroupRequest, GroupState, make_client
from acibatch.blobstore.agentaccess import agent_part
from acibatch.outbound import OutboundPolicy
from acibatch.plan import JobInput, TaskInput, task_inputs
from acibatch.settings import StorageSettings
from acibatch.spec import parse_job_spec
from aciemu.launcher import AciEmulatorProcess
from aciemu.sandbox import bwrap_path
from tests.integration.test_aci_adapter import wait_until

pytestmark = [
    pytest.mark.azurite,
    pytest.mark.skipif(
        bwrap_path() is None, reason="aciemu mounts volumes with bubblewrap (apt-get install bubblewrap)"
    ),
]
REPO_ROOT = Path(__file__).resolve().parents[2]
SUBSCRIPTION = "00000000-0000-0000-0000-0000000000cc"
RESOURCE_GROUP = "rg-create-rerun"
AGENT_IMAGE = "myregistry.azurecr.io/acibatch/agent:1"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AciEmulatorProcess]:
    data = tmp_path_factory.mktemp("aciemu")
    args = ["--images", str(REPO_ROOT / "examples" / "images.json"), "--provisioning-seconds", "0.02"]
    with AciEmulatorProcess(data / "state", args=args, log_path=data / "aciemu.log") as process:
        yield process


@pytest.fixture(scope="module")
def gateway(emulator: AciEmulatorProcess) -> Iterator[AciGateway]:
    with make_client(SUBSCRIPTION, emulator.url, polling_interval=0.1, token=emulator.token) as client:
        yield AciGateway(client, RESOURCE_GROUP)


@pytest.fixture
def storage(azurite: Any) -> StorageSettings:
    prefix = f"r{uuid.uuid4().hex[:6]}-"
    return StorageSettings(
        connection_string=azurite.connection_string, container_prefix=prefix, agent_image=AGENT_IMAGE
    )


def agent_task() -> TaskInput:
    spec = parse_job_spec(
        {
            "image": "python:3.11-slim",
            "command": ["python3", "-c", "import time; print('ran'); time.sleep(30)"],
            "taskCount": 1,
        },
        outbound=OutboundPolicy(allow_http=True, allow=()),
        storage_enabled=True,
    )
    job = JobInput("tenant-a", f"job-{uuid.uuid4().hex[:6]}", spec.to_dict(), None, "fp", "now", 2.0, storage=True)
    [task] = task_inputs(job, spec, 0, 1)
    assert task.agent
    return task


def group_request(storage: StorageSettings, task: TaskInput, created_at: int) -> GroupRequest:
    """What the create activity builds for the attempt, minting the agent's SAS (activities/aci.py)."""
    return GroupRequest(
        name=f"tenant-a-{task.job_id}-0-a1", tenant=task.tenant, job_id=task.job_id, task_id=task.task_id, attempt=1,
        owner=f"task:tenant-a:{task.job_id}:0", image=task.image, command=task.command,
        env={"BATCH_CALLBACK_URL": "http://127.0.0.1:9/api/callbacks/x"}, secure_env={"BATCH_CALLBACK_TOKEN": "tok"},
        cpu=0.5, memory_gb=0.5, priority="Regular", created_at=created_at, location="westeurope",
        agent=dataclasses.replace(agent_part(storage, task, 1, created_at), callback_token="agent-tok"),
    )  # fmt: skip


def running(gateway: AciGateway, name: str) -> GroupState:
    return wait_until(lambda: gateway.get_state(name), lambda state: state.container_state == "Running")


def test_a_rerun_of_the_same_create_leaves_the_running_group_alone(
    gateway: AciGateway, storage: StorageSettings
) -> None:
    task = agent_task()
    created = int(datetime.now(UTC).timestamp())
    first = group_request(storage, task, created)
    gateway.create(first, None)
    before = running(gateway, first.name)
    # The activity runs again with the same input: a new GroupRequest, SAS minted again, same attempt.
    gateway.create(group_request(storage, task, created), None)
    time.sleep(1.0)
    after = gateway.get_state(first.name)
    assert (after.container_state, after.started_at, after.restart_count) == ("Running", before.started_at, 0)
    assert "Killing" not in after.events
    # A different request of the same name (another creation time): it is PUT, and ACI restarts the group.
    gateway.create(group_request(storage, task, created + 60), None)
    restarted = wait_until(lambda: gateway.get_state(first.name), lambda state: state.started_at != before.started_at)
    assert restarted.exists
    assert gateway.delete(first.name)


def test_the_same_create_is_put_again_over_a_group_whose_provisioning_failed(
    emulator: AciEmulatorProcess, gateway: AciGateway, storage: StorageSettings
) -> None:
    """The orchestrator creates the same attempt again after a provisioning failure (its delete may have been
    left to the orphan sweep): that group is replaced, not taken for a running one."""
    task = agent_task()
    request = group_request(storage, task, int(datetime.now(UTC).timestamp()))
    rule = {"op": "create", "fault": "capacity", "count": 1, "match": {"name": request.name}}
    post = urllib.request.Request(
        emulator.url + "/_emulator/faults", json.dumps(rule).encode(),
        {"Content-Type": "application/json", "Authorization": f"Bearer {emulator.token}"},
    )  # fmt: skip
    with urllib.request.urlopen(post, timeout=5) as answer:
        assert answer.status in (200, 201)
    gateway.create(request, None)
    failed = wait_until(lambda: gateway.get_state(request.name), lambda state: state.provisioning_state == "Failed")
    assert failed.container_state != "Running"
    gateway.create(request, None)
    replaced = wait_until(
        lambda: gateway.get_state(request.name), lambda state: state.provisioning_state == "Succeeded"
    )
    assert replaced.container_state == "Running"
    assert gateway.delete(request.name)


def test_the_sidecar_waits_for_the_task_container_at_most_the_tasks_timeout(storage: StorageSettings) -> None:
    task = agent_task()  # taskTimeoutSeconds: the default 3600
    part = agent_part(dataclasses.replace(storage, agent_start_timeout_seconds=1800), task, 1, 1_700_000_000)
    assert part.start_timeout_seconds == 1800
    short = dataclasses.replace(task, task_timeout_seconds=600)
    assert agent_part(storage, short, 1, 1_700_000_000).start_timeout_seconds == 600
