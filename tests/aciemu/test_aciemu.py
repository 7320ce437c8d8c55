"""aciemu driven by the real azure-mgmt-containerinstance client (sync and aio) over loopback HTTP."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)
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

from acibatch.aci import AciGateway, GroupState
from acibatch.observe import observation_from_state
from acibatch.policy import AttemptState, ObservationKind, decide
from aciemu.client import emulator_client, emulator_client_async
from aciemu.launcher import AciEmulatorProcess
from aciemu.sandbox import MARKER_VAR, bwrap_path

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


def post_fault(emulator: AciEmulatorProcess, rule: dict[str, Any]) -> None:
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {emulator.token}"}
    request = urllib.request.Request(f"{emulator.url}/_emulator/faults", data=json.dumps(rule).encode(),
                                     method="POST", headers=headers)  # fmt: skip
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
    return emulator_client(emulator.url, emulator.token)


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
    # `python3` as the container finds it (the sandbox shows the host's /usr, not this venv).
    grab = "import sys\ntry:\n    bytearray(3 * 1024**3)\nexcept MemoryError:\n    sys.exit(42)"
    client.container_groups.begin_create_or_update(RG, "greedy", group("python3", "-c", grab)).result()
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
    # 5 creates per 5 minutes: ARM counts every PUT it forwards, so the refused q1 and q3 below count too.
    args = ["--max-groups", "2", "--max-cores", "4", "--create-rate", "5", "--provisioning-seconds", "1"]
    with AciEmulatorProcess(tmp_path / "state", args=args, log_path=tmp_path / "log") as emulator:
        client = emulator_client(emulator.url, emulator.token, retry_total=0)
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
        retrying = emulator_client(emulator.url, emulator.token, retry_total=3)
        post_fault(emulator, {"op": "create", "fault": "capacity", "match": {"name": "cap-*"}})
        post_fault(emulator, {"op": "create", "fault": "pull_failure", "match": {"image": "flaky/*"}})
        post_fault(emulator, {"op": "create", "fault": "kill", "afterSeconds": 0.3, "match": {"name": "oom"}})
        post_fault(emulator, {"op": "create", "fault": "vanish", "afterSeconds": 0.3, "match": {"name": "gone"}})
        post_fault(emulator, {"op": "create", "fault": "evict", "afterSeconds": 0.3, "match": {"name": "spot"}})
        retrying.container_groups.begin_create_or_update(RG, "plain", group("sleep", "30")).result()
        post_fault(
            emulator, {"op": "get", "fault": "throttle", "retryAfter": 1, "count": 1, "match": {"name": "plain"}}
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
        assert AciGateway(retrying, RG).get_state("spot").evicted


def get_state(client: ContainerInstanceManagementClient, name: str) -> GroupState:
    """The GET seen through the real SDK and acibatch's adapter, as the orchestrator sees it."""
    return AciGateway(client, RG).get_state(name)


def event_names(got: Any) -> set[str]:
    """Group and container event names (read-only SDK fields, typed as always None, hence Any)."""
    names = {event.name for event in got.instance_view.events or []}
    return names | {event.name for event in got.containers[0].instance_view.events or []}


def test_evict_shows_only_what_aci_documents(
    emulator: AciEmulatorProcess, client: ContainerInstanceManagementClient
) -> None:
    post_fault(emulator, {"op": "create", "fault": "evict", "afterSeconds": 0.3, "match": {"name": "evict-*"}})
    post_fault(emulator, {"op": "create", "fault": "kill", "afterSeconds": 0.3, "match": {"name": "killed-*"}})
    client.container_groups.begin_create_or_update(RG, "evict-spot", group("sleep", "30", priority="Spot")).result()
    client.container_groups.begin_create_or_update(RG, "evict-regular", group("sleep", "30")).result()
    client.container_groups.begin_create_or_update(RG, "killed-regular", group("sleep", "30")).result()

    def waiting() -> Any:
        got: Any = client.container_groups.get(RG, "evict-spot")
        return got if got.containers[0].instance_view.current_state.state == "Waiting" else None

    # Waiting for a new node: the container waits again after it ran, and the group is pending; nothing else.
    moving = wait_for(waiting)
    view = moving.containers[0].instance_view
    assert (moving.provisioning_state, moving.instance_view.state) == ("Succeeded", "Pending")
    assert view.restart_count == 0 and view.previous_state is None and view.current_state.exit_code is None
    assert event_names(moving) <= {"Pulling", "Pulled", "Started"}  # no event name ACI does not document
    during = observation_from_state(GroupState.from_group(moving))
    assert during is not None and during.kind is ObservationKind.EVICTED
    # ACI starts it again by itself although the restart policy is Never; the restart is the signal.
    moved = wait_for(lambda: (s := get_state(client, "evict-spot")).container_state == "Running" and s.restart_count)
    assert moved
    state = get_state(client, "evict-spot")
    assert state.restart_policy == "Never" and state.previous_exit_code is None
    observed = observation_from_state(state.to_dict())
    assert observed is not None and observed.kind is ObservationKind.EVICTED
    assert decide(observed, AttemptState(1, 1, priority="Spot")).next_priority == "Regular"
    assert observation_from_state(state.to_dict(), restarts_requested=1) is None  # had the attempt restarted it
    # ACI evicts Spot groups only: the same fault leaves a Regular group running.
    regular = get_state(client, "evict-regular")
    assert (regular.container_state, regular.restart_count, regular.evicted) == ("Running", 0, False)
    # A plain kill of a Regular container is an exit with code 137, not an interruption.
    killed = wait_for(lambda: (s := get_state(client, "killed-regular")).finished and s)
    assert (killed.exit_code, killed.restart_count, killed.evicted) == (137, 0, False)
    exited = observation_from_state(killed)
    assert exited is not None and (exited.kind, exited.exit_code) == (ObservationKind.EXITED, 137)
    for name in ("evict-spot", "evict-regular", "killed-regular"):
        client.container_groups.begin_delete(RG, name).result()


async def test_async_client(emulator: AciEmulatorProcess) -> None:
    async with emulator_client_async(emulator.url, emulator.token) as client:
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
        client = emulator_client(emulator.url, emulator.token)
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
        client = emulator_client(emulator.url, emulator.token)
        client.container_groups.begin_create_or_update(RG, "survivor", group("sleep", "60")).result()
        client.container_groups.begin_create_or_update(RG, "finished", group("true")).result()
        wait_for(lambda: terminated(client, "finished"))
    with AciEmulatorProcess(tmp_path / "state", log_path=tmp_path / "log") as emulator:
        client = emulator_client(emulator.url, emulator.token)
        view = wait_for(lambda: (v := container_view(client, "survivor")) and v.current_state.state == "Running" and v)
        assert view.restart_count == 1
        assert view.previous_state.exit_code == 7147  # platform maintenance, as ACI reports it
        assert terminated(client, "finished").restart_count == 0


def test_a_group_being_moved_after_an_eviction_is_started_after_an_emulator_restart(tmp_path: Path) -> None:
    args = ["--eviction-restart-seconds", "60"]  # the move outlasts the emulator
    with AciEmulatorProcess(tmp_path / "state", args=args, log_path=tmp_path / "log") as emulator:
        client = emulator_client(emulator.url, emulator.token)
        post_fault(emulator, {"op": "create", "fault": "evict", "afterSeconds": 0.2, "match": {"name": "moving"}})
        client.container_groups.begin_create_or_update(RG, "moving", group("sleep", "60", priority="Spot")).result()
        wait_for(lambda: container_view(client, "moving").current_state.state == "Waiting")
    with AciEmulatorProcess(tmp_path / "state", log_path=tmp_path / "log") as emulator:
        client = emulator_client(emulator.url, emulator.token)
        view = wait_for(lambda: (v := container_view(client, "moving")) and v.current_state.state == "Running" and v)
        assert view.restart_count == 1 and view.previous_state is None  # the move went on: restarted once
        assert get_state(client, "moving").evicted


SUB = "00000000-0000-0000-0000-000000000001"
GROUPS = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.ContainerInstance/containerGroups"


def raw(emulator: AciEmulatorProcess, method: str, path: str, authorization: str | None, body: Any = None
        ) -> tuple[int, dict[str, str], Any]:  # fmt: skip
    headers = {"Content-Type": "application/json", **({"Authorization": authorization} if authorization else {})}
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{emulator.url}{path}", data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read()
            return response.status, dict(response.headers), json.loads(text) if text else None
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read() or b"null")


def test_every_arm_route_requires_the_bearer_token(
    emulator: AciEmulatorProcess, client: ContainerInstanceManagementClient
) -> None:
    client.container_groups.begin_create_or_update(
        RG, "guarded", group("sh", "-c", "echo guarded-log; sleep 30", env={"PLAIN": "guarded-plain"})
    ).result()
    wait_for(lambda: client.containers.list_logs(RG, "guarded", "main").content)
    version = "?api-version=2023-05-01"
    routes = [
        ("GET", f"{GROUPS}{version}", None),
        ("GET", f"/subscriptions/{SUB}/providers/Microsoft.ContainerInstance/containerGroups{version}", None),
        ("GET", f"{GROUPS}/guarded{version}", None),
        ("GET", f"{GROUPS}/guarded/containers/main/logs{version}", None),
        ("PUT", f"{GROUPS}/intruder{version}", group("true").serialize()),
        ("POST", f"{GROUPS}/guarded/stop{version}", None),
        ("DELETE", f"{GROUPS}/guarded{version}", None),
        ("GET", "/_emulator/faults", None),
        ("POST", "/_emulator/faults", {"op": "get", "fault": "vanish", "match": {"name": "guarded"}}),
    ]
    refusals = {
        None: ("AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing."),
        f"Basic {emulator.token}": (
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is provided in an invalid format.",
        ),
        "Bearer": (
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is provided in an invalid format.",
        ),
        "Bearer wrong-" + emulator.token: ("InvalidAuthenticationToken", "The access token is invalid."),
        "Bearer " + emulator.token[:-1]: ("InvalidAuthenticationToken", "The access token is invalid."),
    }
    for method, path, body in routes:
        for authorization, (code, message) in refusals.items():
            status, headers, answer = raw(emulator, method, path, authorization, body)
            assert (status, answer) == (401, {"error": {"code": code, "message": message}}), (method, path)
            assert headers["WWW-Authenticate"].startswith("Bearer")
    # Nothing refused took effect: the group runs, no intruder, no fault rule.
    view: Any = client.container_groups.get(RG, "guarded").instance_view
    assert view.state == "Running"
    with pytest.raises(ResourceNotFoundError):
        client.container_groups.get(RG, "intruder")
    # With the token (any case of the scheme, as HTTP says) the same routes answer.
    token = f"bearer {emulator.token}"
    status, _, faults = raw(emulator, "GET", "/_emulator/faults", token)
    assert status == 200 and "guarded" not in json.dumps(faults)
    listed, page = [], f"{GROUPS}{version}"
    while page:  # the module's emulator pages by 2
        status, _, answer = raw(emulator, "GET", page.removeprefix(emulator.url), token)
        assert status == 200
        listed += [item["name"] for item in answer["value"]]
        page = answer.get("nextLink") or ""
    assert "guarded" in listed
    status, _, got = raw(emulator, "GET", f"{GROUPS}/guarded{version}", token)
    assert status == 200 and got["properties"]["containers"][0]["properties"]["environmentVariables"] == [
        {"name": "PLAIN", "value": "guarded-plain"}
    ]
    status, _, logs = raw(emulator, "GET", f"{GROUPS}/guarded/containers/main/logs{version}", token)
    assert status == 200 and "guarded-log" in logs["content"]
    status, _, created = raw(emulator, "PUT", f"{GROUPS}/admitted{version}", token, group("true").serialize())
    assert status == 201 and created["name"] == "admitted"
    for name in ("admitted", "guarded"):  # the module's emulator has a small group quota
        client.container_groups.begin_delete(RG, name).result()
    # Readiness stays open: the launcher polls it before anyone holds the token.
    assert raw(emulator, "GET", "/_emulator/health", None)[0] == 200
    # The SDK sees ARM's refusal as an authentication error, with ARM's code.
    thief = emulator_client(emulator.url, "not-the-token", retry_total=0)
    with thief, pytest.raises(ClientAuthenticationError) as refused:
        list(thief.container_groups.list_by_resource_group(RG))
    assert refused.value.status_code == 401 and refused.value.error is not None
    assert refused.value.error.code == "InvalidAuthenticationToken"


def test_the_token_is_made_once_per_data_folder_private_and_kept_across_restarts(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with AciEmulatorProcess(state, log_path=tmp_path / "log") as emulator:
        first = emulator.token
        assert len(first) >= 32
        assert (state / "token").stat().st_mode & 0o777 == 0o600
        emulator_client(emulator.url, first).container_groups.begin_create_or_update(RG, "kept", group("true")).result()
        assert first not in (tmp_path / "log").read_text()  # never printed
    with AciEmulatorProcess(state, log_path=tmp_path / "log") as emulator:
        assert emulator.token == first
        assert emulator_client(emulator.url, first).container_groups.get(RG, "kept").name == "kept"
    other = tmp_path / "other"
    with AciEmulatorProcess(other, log_path=tmp_path / "log") as emulator:
        assert emulator.token != first  # each data folder its own
    given = "given-" + os.urandom(8).hex()
    with AciEmulatorProcess(state, args=["--token", given], log_path=tmp_path / "log") as emulator:
        assert emulator.token == given
        assert raw(emulator, "GET", f"{GROUPS}?api-version=2023-05-01", f"Bearer {given}")[0] == 200
        assert raw(emulator, "GET", f"{GROUPS}?api-version=2023-05-01", f"Bearer {first}")[0] == 401
