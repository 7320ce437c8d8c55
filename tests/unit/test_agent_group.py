"""The container group of a task with the acibatch agent, as the ACI SDK serializes it for the PUT, and how a GET of
such a group reads; a task without the agent keeps exactly the PUT body it had before issue 24."""

from __future__ import annotations

import base64
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from azure.mgmt.containerinstance.models import ContainerGroup

from acibatch.aci import (
    LIVE_PROVISIONING_STATES,
    GroupRequest,
    GroupState,
    RegistryCredentials,
    build_container_group,
    make_client,
)
from acibatch.agentgroup import AgentPart, start_timeout
from acibatch.observe import observation_from_state
from acibatch.policy import ObservationKind

# The SDK client owns the serializer it sends PUT bodies with; nothing is sent from here.
SDK = make_client("sub", "http://127.0.0.1:9", token="unused")
# PUT bodies serialized by the code of commit acfe634 (before the agent), for the same requests.
BEFORE = json.loads((Path(__file__).parent / "fixtures" / "group_bodies_acfe634.json").read_text())
CALLBACK = "http://127.0.0.1:7071/api/callbacks/j/0?tenant=t"
REQUEST = GroupRequest(
    name="t-j-0-a1-abc", tenant="t", job_id="j", task_id="0", attempt=1, owner="task:t:j:0",
    image="myacr.azurecr.io/app:1", command=("python3", "run.py"), env={"MODE": "x", "BATCH_CALLBACK_URL": CALLBACK},
    secure_env={"BATCH_CALLBACK_TOKEN": "tok"}, cpu=1.5, memory_gb=2.0, priority="Spot", created_at=1700000000,
    location="westeurope",
)  # fmt: skip
MANIFEST = json.dumps({"version": 1, "result": "https://acct/c/r.json?sig=SECRET"})
AGENT = AgentPart(
    image="myacr.azurecr.io/acibatch/agent:1", manifest=MANIFEST, cpu=0.1, memory_gb=0.2, callback_token="agent-tok"
)


def wire(request: GroupRequest, registry: RegistryCredentials | None = None) -> Any:
    return SDK._serialize.body(build_container_group(request, registry), "ContainerGroup")


@pytest.mark.parametrize(
    ("case", "request_", "registry"),
    [
        ("plain", REQUEST, None),
        ("password", REQUEST, RegistryCredentials("myacr.azurecr.io", "user", "pw")),
        ("identity", REQUEST, RegistryCredentials("myacr.azurecr.io", identity="/ids/pull")),
        ("no-command-regular", dataclasses.replace(REQUEST, command=(), priority="Regular"), None),
    ],
)
def test_a_task_without_the_agent_sends_the_same_bytes_as_before(
    case: str, request_: GroupRequest, registry: RegistryCredentials | None
) -> None:
    assert json.dumps(wire(request_, registry)) == BEFORE[case]


def test_an_agent_group_has_the_stagein_the_wrapped_task_and_the_sidecar() -> None:
    body = wire(dataclasses.replace(REQUEST, agent=AGENT))
    props = body["properties"]
    assert props["volumes"] == [
        {"name": "acibatch", "emptyDir": {}},
        {"name": "acibatch-secrets", "secret": {"manifest.json": base64.b64encode(MANIFEST.encode()).decode()}},
    ]
    shared = {"name": "acibatch", "mountPath": "/acibatch"}
    secrets = {"name": "acibatch-secrets", "mountPath": "/acibatch-secrets", "readOnly": True}
    assert props["initContainers"] == [{"name": "acibatch-stagein", "properties": {
        "image": AGENT.image, "command": ["python3", "-m", "acibatch_agent", "stage-in"],
        "volumeMounts": [shared, secrets]}}]  # fmt: skip
    task, sidecar = props["containers"]
    assert task["name"] == "task"
    assert task["properties"]["command"] == ["/bin/sh", "/acibatch/bin/run", "python3", "run.py"]
    assert task["properties"]["volumeMounts"] == [shared]  # never the secrets: user code cannot read the SAS
    assert task["properties"]["environmentVariables"] == [
        {"name": "MODE", "value": "x"},
        {"name": "BATCH_CALLBACK_URL", "value": CALLBACK},
        {"name": "BATCH_CALLBACK_TOKEN", "secureValue": "tok"},
        {"name": "AZ_BATCH_TASK_WORKING_DIR", "value": "/acibatch/wd"},
        {"name": "ACIBATCH_WORK_DIR", "value": "/acibatch/wd"},
    ]
    assert task["properties"]["resources"] == {"requests": {"memoryInGB": 2.0, "cpu": 1.5}}
    assert sidecar == {"name": "acibatch-agent", "properties": {
        "image": AGENT.image, "command": ["python3", "-m", "acibatch_agent", "sidecar"],
        "environmentVariables": [{"name": "BATCH_CALLBACK_URL", "value": CALLBACK},
                                 {"name": "BATCH_CALLBACK_TOKEN", "secureValue": "agent-tok"}],
        "resources": {"requests": {"memoryInGB": 0.2, "cpu": 0.1}},
        "volumeMounts": [shared, secrets]}}  # fmt: skip
    assert (props["restartPolicy"], props["osType"], props["priority"]) == ("Never", "Linux", "Spot")
    # The SAS stays out of every repr a log line or traceback could show.
    assert "SECRET" not in repr(dataclasses.replace(REQUEST, agent=AGENT)) and "SECRET" not in repr(AGENT)
    assert "agent-tok" not in repr(AGENT)


@pytest.mark.parametrize("token", ["", "tok"])
def test_the_sidecar_never_runs_without_a_token_of_its_own(token: str) -> None:
    # "tok" is the task container's token: with it, the user's code could report `completed` for the agent.
    with pytest.raises(ValueError, match="callback token of its own"):
        build_container_group(
            dataclasses.replace(REQUEST, agent=dataclasses.replace(AGENT, callback_token=token)), None
        )


def test_registry_credentials_come_along_when_only_the_agent_image_is_on_the_registry() -> None:
    public = dataclasses.replace(REQUEST, image="python:3.12-slim", agent=AGENT)
    body = wire(public, RegistryCredentials("myacr.azurecr.io", "user", "pw"))
    assert body["properties"]["imageRegistryCredentials"] == [
        {"server": "myacr.azurecr.io", "username": "user", "password": "pw"}
    ]
    assert "imageRegistryCredentials" not in wire(dataclasses.replace(public, agent=None), RegistryCredentials(
        "myacr.azurecr.io", "user", "pw"))["properties"]  # fmt: skip


def test_an_agent_task_needs_a_command() -> None:
    with pytest.raises(ValueError, match="needs a command"):
        build_container_group(dataclasses.replace(REQUEST, command=(), agent=AGENT), None)


def container(name: str, state: str | None, exit_code: int | None = None) -> dict[str, Any]:
    view = {"restartCount": 0, "currentState": {"state": state, "exitCode": exit_code}} if state else None
    props: dict[str, Any] = {"image": "i", "resources": {"requests": {"cpu": 1, "memoryInGB": 1}}}
    return {"name": name, "properties": {**props, **({"instanceView": view} if view else {})}}


def got(group_state: str, *containers: dict[str, Any]) -> GroupState:
    """A GET answer as ARM renders it, read with the SDK's deserializer."""
    body = {"name": "g", "properties": {"provisioningState": "Succeeded", "restartPolicy": "Never", "osType": "Linux",
            "containers": list(containers), "instanceView": {"state": group_state}}}  # fmt: skip
    return GroupState.from_group(ContainerGroup.deserialize(body))


def test_the_attempt_ends_when_the_sidecar_has_ended_too() -> None:
    uploading = got("Running", container("task", "Terminated", 3), container("acibatch-agent", "Running"))
    assert (uploading.container_state, uploading.exit_code, uploading.finished) == ("Terminated", 3, False)
    assert observation_from_state(uploading.to_dict()) is None  # through the JSON the activity returns
    done = got("Failed", container("acibatch-agent", "Terminated", 0), container("task", "Terminated", 3))
    assert (done.exit_code, done.finished, done.to_dict().get("sidecarsActive")) == (3, True, None)
    observed = observation_from_state(done.to_dict())
    assert observed is not None and (observed.kind, observed.exit_code) == (ObservationKind.EXITED, 3)
    # Init containers still running: nothing has started, and nothing is finished.
    staging = got("Pending", container("task", None), container("acibatch-agent", None))
    assert not staging.finished


def test_a_one_container_group_reads_as_before() -> None:
    ended = got("Succeeded", container("task", "Terminated", 0))
    assert ended.finished and "sidecarsActive" not in ended.to_dict()
    assert GroupState.from_dict(ended.to_dict()) == ended


def test_the_sidecar_is_told_how_long_to_wait_for_the_task_container() -> None:
    body = wire(dataclasses.replace(REQUEST, agent=dataclasses.replace(AGENT, start_timeout_seconds=1800)))
    _, sidecar = body["properties"]["containers"]
    assert sidecar["properties"]["environmentVariables"] == [
        {"name": "BATCH_CALLBACK_URL", "value": CALLBACK},
        {"name": "ACIBATCH_START_TIMEOUT", "value": "1800"},
        {"name": "BATCH_CALLBACK_TOKEN", "secureValue": "agent-tok"},
    ]


@pytest.mark.parametrize(("setting", "task_timeout", "expected"), [(1800, 3600, 1800), (1800, 600, 600), (60, 60, 60)])
def test_the_start_wait_never_exceeds_the_tasks_timeout(setting: int, task_timeout: int, expected: int) -> None:
    assert start_timeout(setting, task_timeout) == expected


@pytest.mark.parametrize(
    ("state", "left_alone"),
    [("Succeeded", True), ("Pending", True), ("Creating", True), ("Updating", True), ("Repairing", True),
     ("Failed", False), ("Canceled", False), ("Deleting", False), ("NotAccessible", False), (None, False)],
)  # fmt: skip
def test_a_rerun_create_leaves_only_a_live_group_alone(state: str | None, left_alone: bool) -> None:
    # The states are the REST spec's ContainerGroupProvisioningState values (aciemu renders only some of them).
    assert (state in LIVE_PROVISIONING_STATES) is left_alone
