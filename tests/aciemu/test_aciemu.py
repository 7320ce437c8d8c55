"""aciemu driven by the real azure-mgmt-containerinstance client (sync and aio) over loopback HTTP."""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.mgmt.containerinstance import ContainerInstanceManagementClient
from azure.mgmt.containerinstance.models import (
    Container,
    ContainerExecRequest,
    ContainerGroup,
    EnvironmentVariable,
    Resource,
    ResourceRequests,
    ResourceRequirements,
)

from aciemu.client import emulator_client, emulator_client_async
from aciemu.groups import Group
from aciemu.launcher import AciEmulatorProcess
from aciemu.sandbox import MARKER_VAR, bwrap_path
from aciemu.server import Emulator

pytestmark = pytest.mark.e2e
RG = "rg-test"


def group(*command: str, policy: str = "Never", env: dict[str, str] | None = None, secure: dict[str, str] | None = None,
          cpu: float = 0.5, image: str = "python:3", priority: str | None = None) -> ContainerGroup:  # fmt: skip
    variables = [EnvironmentVariable(name=k, value=v) for k, v in (env or {}).items()]
    variables += [EnvironmentVariable(name=k, secure_value=v) for k, v in (secure or {}).items()]
    container = Container(
        name="main", image=image, command=list(command) or None, environment_variables=variables,
        resources=ResourceRequirements(requests=ResourceRequests(cpu=cpu, memory_in_gb=0.5)),
    )  # fmt: skip
    return ContainerGroup(location="westeurope", containers=[container], os_type="Linux", restart_policy=policy,
                          tags={"suite": "aciemu"}, priority=priority)  # fmt: skip


def wait_for(check: Callable[[], Any], timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def container_view(client: ContainerInstanceManagementClient, name: str) -> Any:
    return client.container_groups.get(RG, name).containers[0].instance_view


def terminated(client: ContainerInstanceManagementClient, name: str) -> Any:
    view = container_view(client, name)
    return view if view and view.current_state and view.current_state.state == "Terminated" else None


def post_fault(url: str, rule: dict[str, Any]) -> None:
    request = urllib.request.Request(f"{url}/_emulator/faults", data=json.dumps(rule).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AciEmulatorProcess]:
    data = tmp_path_factory.mktemp("aciemu")
    args = ["--page-size", "2", "--max-groups", "20", "--max-cores", "8", "--restart-backoff-scale", "0.1"]
    with AciEmulatorProcess(data / "state", args=args, log_path=data / "aciemu.log") as process:
        yield process


@pytest.fixture(scope="module")
def client(emulator: AciEmulatorProcess) -> ContainerInstanceManagementClient:
    return emulator_client(emulator.url)


def test_lifecycle_with_every_operation(client: ContainerInstanceManagementClient) -> None:
    created = client.container_groups.begin_create_or_update(
        RG, "life", group("sh", "-c", "echo plain=$PLAIN secret=$SECRET; echo line2; sleep 30",
                          env={"PLAIN": "p"}, secure={"SECRET": "s3cret"}),
    ).result()  # fmt: skip
    assert created.provisioning_state == "Succeeded"
    got = client.container_groups.get(RG, "life")
    assert got.instance_view.state == "Running"
    variables = {v.name: (v.value, v.secure_value) for v in got.containers[0].environment_variables}
    assert variables == {"PLAIN": ("p", None), "SECRET": (None, None)}  # secure values are write-only
    assert [e.name for e in got.containers[0].instance_view.events][:3] == ["Pulling", "Pulled", "Started"]
    logs = wait_for(lambda: client.containers.list_logs(RG, "life", "main").content)
    assert "plain=p secret=s3cret" in logs
    assert client.containers.list_logs(RG, "life", "main", tail=1).content.strip() == "line2"
    client.container_groups.update(RG, "life", Resource(tags={"suite": "aciemu", "extra": "1"}))
    assert client.container_groups.get(RG, "life").tags["extra"] == "1"
    client.container_groups.stop(RG, "life")
    stopped = client.container_groups.get(RG, "life")
    assert stopped.instance_view.state == "Stopped"
    client.container_groups.begin_start(RG, "life").result()
    wait_for(lambda: client.container_groups.get(RG, "life").instance_view.state == "Running")
    client.container_groups.begin_restart(RG, "life").result()
    wait_for(lambda: container_view(client, "life").restart_count >= 1)
    with pytest.raises(HttpResponseError) as unsupported:
        client.containers.execute_command(RG, "life", "main", ContainerExecRequest(command="/bin/sh"))
    assert unsupported.value.error.code == "UnsupportedOperation"
    client.container_groups.begin_delete(RG, "life").result()
    with pytest.raises(ResourceNotFoundError):
        client.container_groups.get(RG, "life")
    client.container_groups.begin_delete(RG, "life").result()  # deleting twice is fine (204)


def test_exit_codes_and_restart_policies(client: ContainerInstanceManagementClient) -> None:
    client.container_groups.begin_create_or_update(RG, "never", group("sh", "-c", "exit 3")).result()
    client.container_groups.begin_create_or_update(RG, "onfailure", group("sh", "-c", "exit 1", policy="OnFailure"))
    client.container_groups.begin_create_or_update(RG, "always", group("true", policy="Always"))
    client.container_groups.begin_create_or_update(RG, "ok", group("true", policy="OnFailure"))
    view = wait_for(lambda: terminated(client, "never"))
    assert view.current_state.exit_code == 3 and view.current_state.detail_status == "Error"
    assert client.container_groups.get(RG, "never").instance_view.state == "Failed"
    wait_for(lambda: container_view(client, "onfailure").restart_count >= 2)
    wait_for(lambda: container_view(client, "always").restart_count >= 2)
    done = wait_for(lambda: terminated(client, "ok"))
    assert done.current_state.exit_code == 0 and done.restart_count == 0
    assert client.container_groups.get(RG, "ok").instance_view.state == "Succeeded"
    for name in ("never", "onfailure", "always", "ok"):
        client.container_groups.begin_delete(RG, name).result()


def test_memory_beyond_the_limit_is_refused(client: ContainerInstanceManagementClient) -> None:
    # 0.5 GB asks for the 2 GiB address-space floor: a 3 GiB allocation must fail inside the container.
    grab = "import sys\ntry:\n    bytearray(3 * 1024**3)\nexcept MemoryError:\n    sys.exit(42)"
    client.container_groups.begin_create_or_update(RG, "greedy", group(sys.executable, "-c", grab)).result()
    view = wait_for(lambda: terminated(client, "greedy"))
    assert view.current_state.exit_code == 42
    client.container_groups.begin_delete(RG, "greedy").result()


def test_listing_pages_and_usages(client: ContainerInstanceManagementClient) -> None:
    for index in range(5):
        client.container_groups.begin_create_or_update(RG, f"list-{index}", group("sleep", "30"))
    names = {g.name for g in client.container_groups.list_by_resource_group(RG)}
    assert {f"list-{i}" for i in range(5)} <= names  # 2 per page: the SDK followed nextLink
    assert {f"list-{i}" for i in range(5)} <= {g.name for g in client.container_groups.list()}
    usages = {u.name.value: (u.current_value, u.limit) for u in client.location.list_usage("westeurope")}
    assert usages["ContainerGroups"][1] == 20 and usages["ContainerGroups"][0] >= 5
    for index in range(5):
        client.container_groups.begin_delete(RG, f"list-{index}").result()


@pytest.mark.parametrize(
    ("name", "body", "code"),
    [
        ("Bad_Name", group("true"), "InvalidContainerGroupName"),
        ("too-big", group("true", cpu=5), "InvalidContainerResourceRequests"),
        ("no-command", group(image="unknown/image:1"), "InaccessibleImage"),
        ("bad-policy", group("true", policy="Sometimes"), "InvalidRestartPolicy"),
    ],
)
def test_validation_errors_use_the_arm_envelope(
    client: ContainerInstanceManagementClient, name: str, body: ContainerGroup, code: str
) -> None:
    with pytest.raises(HttpResponseError) as failed:
        client.container_groups.begin_create_or_update(RG, name, body)
    assert failed.value.status_code == 400 and failed.value.error.code == code


def test_quota_throttling_transitioning_and_faults(tmp_path: Path) -> None:
    args = ["--max-groups", "2", "--max-cores", "4", "--create-rate", "3", "--provisioning-seconds", "1"]
    with AciEmulatorProcess(tmp_path / "state", args=args, log_path=tmp_path / "log") as emulator:
        client = emulator_client(emulator.url, retry_total=0)
        client.container_groups.begin_create_or_update(RG, "q1", group("sleep", "30"), polling=False)
        with pytest.raises(ResourceExistsError) as transitioning:
            client.container_groups.begin_create_or_update(RG, "q1", group("sleep", "30"), polling=False)
        assert transitioning.value.error.code == "ContainerGroupTransitioning"
        client.container_groups.begin_create_or_update(RG, "q2", group("sleep", "30"), polling=False)
        with pytest.raises(HttpResponseError) as quota:
            client.container_groups.begin_create_or_update(RG, "q3", group("sleep", "30"), polling=False)
        assert quota.value.error.code == "ContainerGroupQuotaReached" and "Limit: '2'" in quota.value.message
        client.container_groups.begin_delete(RG, "q2").result()
        client.container_groups.begin_create_or_update(RG, "q3", group("sleep", "30"), polling=False)
        client.container_groups.begin_delete(RG, "q3").result()
        with pytest.raises(HttpResponseError) as throttled:
            client.container_groups.begin_create_or_update(RG, "q4", group("sleep", "30"), polling=False)
        assert throttled.value.status_code == 429 and int(throttled.value.response.headers["Retry-After"]) > 0

    with AciEmulatorProcess(tmp_path / "faults", log_path=tmp_path / "log2") as emulator:
        retrying = emulator_client(emulator.url, retry_total=3)
        post_fault(emulator.url, {"op": "create", "fault": "capacity", "match": {"name": "cap-*"}})
        post_fault(emulator.url, {"op": "create", "fault": "pull_failure", "match": {"image": "flaky/*"}})
        post_fault(emulator.url, {"op": "create", "fault": "kill", "afterSeconds": 0.3, "match": {"name": "oom"}})
        post_fault(emulator.url, {"op": "create", "fault": "vanish", "afterSeconds": 0.3, "match": {"name": "gone"}})
        post_fault(emulator.url, {"op": "create", "fault": "evict", "afterSeconds": 0.3, "match": {"name": "spot"}})
        retrying.container_groups.begin_create_or_update(RG, "plain", group("sleep", "30")).result()
        post_fault(
            emulator.url, {"op": "get", "fault": "throttle", "retryAfter": 1, "count": 1, "match": {"name": "plain"}}
        )
        started = time.monotonic()
        assert retrying.container_groups.get(RG, "plain").name == "plain"  # 429 + Retry-After, retried by the SDK
        assert time.monotonic() - started >= 0.9
        with pytest.raises(HttpResponseError) as capacity:
            retrying.container_groups.begin_create_or_update(RG, "cap-1", group("true")).result()
        assert capacity.value.error.code is None and "not available in the location" in capacity.value.error.message
        with pytest.raises(HttpResponseError) as pull:
            retrying.container_groups.begin_create_or_update(RG, "pull", group("true", image="flaky/app:1"))
        assert pull.value.error.code == "InaccessibleImage"
        retrying.container_groups.begin_create_or_update(RG, "oom", group("sleep", "30")).result()
        assert wait_for(lambda: terminated(retrying, "oom")).current_state.exit_code == 137
        retrying.container_groups.begin_create_or_update(RG, "gone", group("sleep", "30")).result()
        wait_for(lambda: "gone" not in {g.name for g in retrying.container_groups.list_by_resource_group(RG)})
        retrying.container_groups.begin_create_or_update(RG, "spot", group("sleep", "30", priority="Spot")).result()
        evicted = wait_for(lambda: container_view(retrying, "spot").restart_count >= 1 or None)
        assert evicted
        events = [e.name for e in retrying.container_groups.get(RG, "spot").instance_view.events]
        assert "SpotEvicted" in events


async def test_async_client(emulator: AciEmulatorProcess) -> None:
    async with emulator_client_async(emulator.url) as client:
        poller = await client.container_groups.begin_create_or_update(RG, "async-1", group("sh", "-c", "exit 0"))
        created = await poller.result()
        assert created.name == "async-1"
        fetched = await client.container_groups.get(RG, "async-1")
        assert fetched.containers[0].name == "main"
        await (await client.container_groups.begin_delete(RG, "async-1")).result()


def marked_processes(marker_part: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                environ = Path(f"/proc/{entry}/environ").read_bytes()
            except OSError:
                continue
            if f"{MARKER_VAR}=".encode() in environ and marker_part.encode() in environ:
                found.append(int(entry))
    return found


@pytest.mark.parametrize("sandbox", ["process-group", pytest.param("bwrap", marks=pytest.mark.bwrap)])
def test_no_process_outlives_delete_stop_or_shutdown(tmp_path: Path, sandbox: str) -> None:
    if sandbox == "bwrap" and bwrap_path() is None:
        pytest.skip("bubblewrap is not installed (apt-get install bubblewrap)")
    args = ["--no-bwrap"] if sandbox == "process-group" else []
    detach = "setsid sleep 300 & (sleep 300 &) ; sleep 300"
    with AciEmulatorProcess(tmp_path / "state", args=args, log_path=tmp_path / "log") as emulator:
        client = emulator_client(emulator.url)
        health = json.loads(urllib.request.urlopen(f"{emulator.url}/_emulator/health").read())
        assert health["bwrap"] is (sandbox == "bwrap")
        for name in ("del", "stop", "shutdown"):
            client.container_groups.begin_create_or_update(RG, name, group("sh", "-c", detach)).result()
        wait_for(lambda: len(marked_processes(str(tmp_path))) >= 3 if sandbox == "process-group" else True)
        time.sleep(0.5)
        client.container_groups.begin_delete(RG, "del").result()
        client.container_groups.stop(RG, "stop")
        remaining = marked_processes(str(tmp_path))
    time.sleep(0.3)
    assert marked_processes(str(tmp_path)) == [], "processes survived"
    del remaining


def test_groups_survive_an_emulator_restart_like_a_host_reboot(tmp_path: Path) -> None:
    with AciEmulatorProcess(tmp_path / "state", log_path=tmp_path / "log") as emulator:
        client = emulator_client(emulator.url)
        client.container_groups.begin_create_or_update(RG, "survivor", group("sleep", "60")).result()
        client.container_groups.begin_create_or_update(RG, "finished", group("true")).result()
        wait_for(lambda: terminated(client, "finished"))
    with AciEmulatorProcess(tmp_path / "state", log_path=tmp_path / "log") as emulator:
        client = emulator_client(emulator.url)
        view = wait_for(lambda: (v := container_view(client, "survivor")) and v.current_state.state == "Running" and v)
        assert view.restart_count == 1
        assert view.previous_state.exit_code == 7147  # platform maintenance, as ACI reports it
        assert terminated(client, "finished").restart_count == 0


def test_a_save_that_changes_nothing_leaves_the_group_file_alone(tmp_path: Path) -> None:
    emulator = Emulator(tmp_path)
    group = Group(key="s/rg/g", subscription="s", resource_group="rg", name="g", body={"location": "westeurope"})
    emulator.groups[group.key] = group
    emulator.save(group)
    path = next((tmp_path / "groups").glob("*.json"))
    written = path.stat().st_ino  # every write replaces the file, so a rewrite shows as a new inode
    emulator.save(group)
    assert path.stat().st_ino == written
    group.state = "Running"
    emulator.save(group)
    assert path.stat().st_ino != written
    assert Group.from_dict(json.loads(path.read_text())).state == "Running"
    del emulator.groups[group.key]
