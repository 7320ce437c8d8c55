"""AciGateway with the real azure-mgmt-containerinstance sync client against an aciemu subprocess on loopback."""

from __future__ import annotations

import http.server
import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from azure.core.pipeline.transport import RequestsTransport

from acibatch.aci import APP_TAG, AciGateway, ArmError, GroupRequest, GroupState, build_container_group, make_client
from acibatch.loopback import LoopbackTransport
from acibatch.observe import observation_from_state
from aciemu.launcher import AciEmulatorProcess
from tests.httpserve import send_json, serving_on_a_thread

SUBSCRIPTION = "00000000-0000-0000-0000-0000000000aa"
RESOURCE_GROUP = "rg-adapter-test"
T = TypeVar("T")


def wait_until(read: Callable[[], T], done: Callable[[T], bool], timeout: float = 10.0) -> T:
    deadline = time.monotonic() + timeout
    value = read()
    while not done(value):
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached within {timeout} s; last value: {value!r}")
        time.sleep(0.05)
        value = read()
    return value


def request(name: str, command: tuple[str, ...], **overrides: object) -> GroupRequest:
    fields: dict[str, object] = {
        "name": name, "tenant": "tenant-a", "job_id": "job-1", "task_id": "7", "attempt": 2,
        "owner": "task:tenant-a:job-1:7", "image": "python:3.11-slim", "command": command,
        "env": {}, "secure_env": {}, "cpu": 0.5, "memory_gb": 1.0, "priority": "Regular",
        "created_at": 1_800_000_000, "location": "westeurope",
    }  # fmt: skip
    fields.update(overrides)
    return GroupRequest(**fields)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AciEmulatorProcess]:
    data = tmp_path_factory.mktemp("aciemu")
    # No bubblewrap: the container must write into a host temp dir the test reads back (bwrap gives a private /tmp).
    # A page size of 2 makes listing follow nextLink.
    args = ["--no-bwrap", "--provisioning-seconds", "0.02", "--eviction-restart-seconds", "0.3", "--page-size", "2"]
    with AciEmulatorProcess(data / "state", args=args, log_path=data / "aciemu.log") as process:
        assert process.url.startswith("http://127.0.0.1:")
        yield process


@pytest.fixture(scope="module", params=["loopback", "requests"])
def gateway(emulator: AciEmulatorProcess, request: pytest.FixtureRequest) -> Iterator[AciGateway]:
    """Every test runs with the local stack's transport and with requests, the transport the client uses in Azure."""
    transport = RequestsTransport(use_env_settings=False) if request.param == "requests" else None
    with make_client(
        SUBSCRIPTION, emulator.url, polling_interval=0.1, transport=transport, token=emulator.token
    ) as client:
        expected = RequestsTransport if request.param == "requests" else LoopbackTransport
        assert isinstance(client._client._pipeline._transport, expected)
        yield AciGateway(client, RESOURCE_GROUP)


def add_fault(emulator: AciEmulatorProcess, rule: dict[str, object]) -> None:
    body = json.dumps(rule).encode()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {emulator.token}"}
    post = urllib.request.Request(emulator.url + "/_emulator/faults", body, headers)
    with urllib.request.urlopen(post, timeout=5) as response:
        assert response.status in (200, 201)


def test_run_to_exit_code_with_env_and_secure_env(gateway: AciGateway, tmp_path: Path) -> None:
    script = 'env | cut -d= -f1 | sort; printf %s "$SECRET_TOKEN" > "$OUT_DIR/secret"; exit 3'
    req = request(
        "adapter-exit3",
        ("sh", "-c", script),
        env={"OUT_DIR": str(tmp_path), "MODE": "plain"},
        secure_env={"SECRET_TOKEN": "s3cr3t-value"},
    )
    gateway.create(req, None)
    state = wait_until(lambda: gateway.get_state("adapter-exit3"), lambda s: s.finished)
    assert state.exists and state.provisioning_state == "Succeeded"
    assert (state.container_state, state.exit_code) == ("Terminated", 3)
    assert state.state == "Failed" and not state.evicted and state.finished_at is not None
    assert GroupState.from_dict(state.to_dict()) == state
    assert (tmp_path / "secret").read_text() == "s3cr3t-value"
    logs = gateway.logs("adapter-exit3")
    assert logs is not None
    names = set(logs.split())
    assert {"OUT_DIR", "MODE", "SECRET_TOKEN"} <= names
    assert "s3cr3t-value" not in logs
    assert gateway.logs("adapter-exit3", tail=1) == logs.splitlines(keepends=True)[-1]
    assert gateway.delete("adapter-exit3") is True


def test_lifecycle_running_stop_restart_delete(gateway: AciGateway) -> None:
    gateway.create(request("adapter-life", ("sh", "-c", "echo up; sleep 60")), None)
    running = wait_until(lambda: gateway.get_state("adapter-life"), lambda s: s.container_state == "Running")
    assert running.state == "Running" and not running.finished and running.exit_code is None
    assert wait_until(lambda: gateway.logs("adapter-life"), lambda text: text == "up\n") == "up\n"
    assert gateway.restart("adapter-life") is True
    restarted = wait_until(
        lambda: gateway.get_state("adapter-life"), lambda s: s.restart_count == 1 and s.container_state == "Running"
    )
    assert not restarted.finished
    assert gateway.stop("adapter-life") is True
    stopped = wait_until(lambda: gateway.get_state("adapter-life"), lambda s: s.finished)
    assert stopped.state == "Stopped"
    assert gateway.delete("adapter-life") is True
    assert gateway.get_state("adapter-life") == GroupState(exists=False)
    assert gateway.delete("adapter-life") is False
    assert gateway.stop("adapter-life") is False
    assert gateway.restart("adapter-life") is False
    assert gateway.logs("adapter-life") is None


def test_list_app_groups_filters_by_tag_across_pages(gateway: AciGateway) -> None:
    ours = [f"adapter-listed-{index}" for index in range(3)]
    for name in ours:
        gateway.create(request(name, ("true",)), None)
    # A group some other tool created in the same resource group: no app tag, so the sweep must not see it.
    model = build_container_group(request("foreign-group", ("true",)), None)
    model.tags = {"app": "someone-else"}
    gateway.client.container_groups.begin_create_or_update(RESOURCE_GROUP, "foreign-group", model).result()
    listed = {summary.name: summary.tags for summary in gateway.list_app_groups()}
    # At least four groups on two pages: all of ours are listed, the foreign one is not.
    assert set(ours) <= set(listed) and "foreign-group" not in listed
    assert listed[ours[0]] == {
        "app": APP_TAG, "tenant": "tenant-a", "job": "job-1", "task": "7", "attempt": "2",
        "owner": "task:tenant-a:job-1:7", "created": "1800000000",
    }  # fmt: skip
    for name in [*ours, "foreign-group"]:
        assert gateway.delete(name) is True


def test_image_the_emulator_cannot_start_is_an_arm_error(gateway: AciGateway) -> None:
    with pytest.raises(ArmError) as raised:
        gateway.create(request("adapter-badimage", (), image="registry.invalid/nothing:1"), None)
    assert (raised.value.status, raised.value.code) == (400, "InaccessibleImage")
    assert raised.value.message
    assert ArmError.from_dict(raised.value.to_dict()).code == "InaccessibleImage"
    assert gateway.get_state("adapter-badimage").exists is False


def test_spot_eviction_is_visible(gateway: AciGateway, emulator: AciEmulatorProcess) -> None:
    add_fault(emulator, {"op": "create", "fault": "evict", "afterSeconds": 0.3, "match": {"name": "adapter-spot"}})
    gateway.create(request("adapter-spot", ("sleep", "60"), priority="Spot"), None)
    # Waiting for a new node after it ran (provisioning had Succeeded), then started again by ACI by itself under
    # restart policy Never: both show.
    moving = wait_until(
        lambda: gateway.get_state("adapter-spot"),
        lambda s: s.container_state == "Waiting" and s.provisioning_state == "Succeeded",
    )
    assert (moving.state, moving.restart_count, moving.evicted) == ("Pending", 0, True)
    evicted = wait_until(lambda: gateway.get_state("adapter-spot"), lambda s: s.container_state == "Running")
    assert evicted.evicted
    assert (evicted.container_state, evicted.restart_count, evicted.restart_policy) == ("Running", 1, "Never")
    assert not any("evict" in name.lower() for name in evicted.events)  # ACI names no event for it
    assert GroupState.from_dict(evicted.to_dict()) == evicted
    assert gateway.delete("adapter-spot") is True


def test_our_own_restart_is_not_taken_for_the_platforms(gateway: AciGateway) -> None:
    gateway.create(request("adapter-restarted", ("sleep", "60"), priority="Spot"), None)
    wait_until(lambda: gateway.get_state("adapter-restarted"), lambda s: s.container_state == "Running")
    assert gateway.restart("adapter-restarted") is True
    restarted = wait_until(
        lambda: gateway.get_state("adapter-restarted"),
        lambda s: s.restart_count == 1 and s.container_state == "Running",
    )
    assert restarted.interruption() is not None  # the same GET, counting the restart as ACI's own
    assert observation_from_state(restarted, restarts_requested=1) is None
    assert gateway.delete("adapter-restarted") is True


def test_other_failures_are_arm_errors_even_without_a_code(gateway: AciGateway, emulator: AciEmulatorProcess) -> None:
    gateway.create(request("adapter-faulty", ("sleep", "60")), None)
    rule = {"op": "get", "fault": "error", "status": 400, "code": None, "message": "odd failure", "count": 1}
    add_fault(emulator, {**rule, "match": {"name": "adapter-faulty"}})
    with pytest.raises(ArmError) as raised:
        gateway.get_state("adapter-faulty")
    assert (raised.value.status, raised.value.code) == (400, None)
    assert "odd failure" in raised.value.message
    assert gateway.get_state("adapter-faulty").exists  # the rule fired once
    assert gateway.delete("adapter-faulty") is True


class AsyncDeleteArm:
    """A loopback ARM that answers DELETE the other way the service may (202 + Azure-AsyncOperation), then
    reports the operation InProgress once and `final` after, counting the status polls."""

    def __init__(self, final: str) -> None:
        self.final = final
        self.polls = 0
        arm = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_DELETE(self) -> None:
                operation = f"http://127.0.0.1:{arm.port}/operations/delete-1?api-version=2023-05-01"
                send_json(self, 202, {}, {"Azure-AsyncOperation": operation, "Retry-After": "0"})

            def do_GET(self) -> None:
                arm.polls += 1
                status = "InProgress" if arm.polls == 1 else arm.final
                body: dict[str, object] = {"status": status}
                if status == "Failed":
                    body["error"] = {"code": "DeleteFailed", "message": "the group could not be deleted"}
                send_json(self, 200, body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]


@pytest.mark.parametrize("final", ["Succeeded", "Failed"])
def test_an_asynchronous_delete_is_waited_for_and_its_failure_raised(final: str) -> None:
    arm = AsyncDeleteArm(final)
    with serving_on_a_thread(arm.server):
        with make_client(SUBSCRIPTION, f"http://127.0.0.1:{arm.port}", polling_interval=0.01, token="t") as client:
            gateway = AciGateway(client, RESOURCE_GROUP)
            if final == "Succeeded":
                assert gateway.delete("async-delete", known_to_exist=True) is True
            else:
                with pytest.raises(ArmError, match="could not be deleted"):
                    gateway.delete("async-delete", known_to_exist=True)
        assert arm.polls == 2  # returned only once the operation had ended
