"""Rendering in-process: stored groups rendered as ARM JSON and read back with the SDK's own deserializers
(`ContainerGroup.deserialize` and friends), as the client reads the emulator's answers."""

from __future__ import annotations

import json
from typing import Any

import pytest
from azure.mgmt.containerinstance.models import (
    Container,
    ContainerGroup,
    ContainerGroupListResult,
    EnvironmentVariable,
    ImageRegistryCredential,
    InitContainerDefinition,
    ResourceRequests,
    ResourceRequirements,
    UsageListResult,
)
from yarl import URL

from aciemu.client import emulator_client
from aciemu.groupstate import ContainerRun, Group
from aciemu.limits import Admitted, Window
from aciemu.rendering import (
    OperationKind,
    UsageRow,
    operation_status,
    operation_url,
    parse_operation_token,
    remaining_headers,
    render_deleted,
    render_group,
    render_page,
    render_usages,
)

SDK = emulator_client("http://127.0.0.1:9", "unused")
SUB = "00000000-0000-0000-0000-000000000001"


def sent_body() -> dict[str, Any]:
    """A PUT body as the SDK serializes it: secure values and a registry password included."""
    group = ContainerGroup(
        location="westeurope", os_type="Linux", restart_policy="Never", tags={"job": "j1"},
        containers=[Container(
            name="main", image="registry.example/app:1", command=["sleep", "30"],
            resources=ResourceRequirements(requests=ResourceRequests(cpu=1, memory_in_gb=1.5)),
            environment_variables=[EnvironmentVariable(name="PLAIN", value="p"),
                                   EnvironmentVariable(name="SECRET", secure_value="s3cret")],
        )],
        init_containers=[InitContainerDefinition(name="init", image="busybox", command=["true"])],
        image_registry_credentials=[ImageRegistryCredential(server="registry.example", username="u",
                                                            password="pw")],
    )  # fmt: skip
    body: dict[str, Any] = json.loads(json.dumps(SDK._serialize.body(group, "ContainerGroup")))
    return body


def running_group(name: str = "job-1") -> Group:
    group = Group(key=f"{SUB}/rg/{name}", subscription=SUB, resource_group="rg", name=name, body=sent_body())
    group.provisioning_state, group.state = "Succeeded", "Running"
    group.group_event("Scheduled", "on a node")
    main = ContainerRun("main")
    main.event("Started", "Started container main")
    main.current = {"state": "Running", "detailStatus": "", "startTime": "2026-12-06T06:00:00.000000Z"}
    main.previous = {"state": "Terminated", "exitCode": 7147, "detailStatus": "Killed",
                     "finishTime": "2026-12-06T05:59:59.000000Z"}  # fmt: skip
    main.restart_count = 1
    init = ContainerRun("init")
    init.terminated(0, "Completed")
    group.containers, group.init_containers = {"main": main}, {"init": init}
    return group


def test_a_rendered_group_reads_back_through_the_sdk() -> None:
    got = ContainerGroup.deserialize(render_group(running_group()))
    assert (
        got.id == f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroups/job-1"
    )
    assert (got.name, got.type, got.location, got.tags) == (
        "job-1",
        "Microsoft.ContainerInstance/containerGroups",
        "westeurope",
        {"job": "j1"},
    )
    view: Any = got.instance_view  # read-only SDK fields are typed None: read them as Any
    assert (got.provisioning_state, view.state, got.sku) == ("Succeeded", "Running", "Standard")
    assert [event.name for event in view.events] == ["Scheduled"]
    main: Any = got.containers[0].instance_view
    assert (main.restart_count, main.current_state.state, main.previous_state.exit_code) == (1, "Running", 7147)
    assert main.current_state.start_time.isoformat() == "2026-12-06T06:00:00+00:00"
    assert [event.name for event in main.events] == ["Started"]
    init: Any = got.init_containers[0].instance_view
    assert (init.current_state.state, init.current_state.exit_code) == ("Terminated", 0)


def test_write_only_values_never_come_back_and_the_stored_body_keeps_them() -> None:
    group = running_group()
    got = ContainerGroup.deserialize(render_group(group))
    variables = {v.name: (v.value, v.secure_value) for v in got.containers[0].environment_variables}
    assert variables == {"PLAIN": ("p", None), "SECRET": (None, None)}
    credential = got.image_registry_credentials[0]
    assert (credential.server, credential.username, credential.password) == ("registry.example", "u", None)
    stored = group.body["properties"]
    assert stored["containers"][0]["properties"]["environmentVariables"][1]["secureValue"] == "s3cret"
    assert stored["imageRegistryCredentials"][0]["password"] == "pw"
    assert "instanceView" not in stored["containers"][0]["properties"]


def test_a_group_stored_malformed_by_older_code_renders_its_well_formed_parts_only() -> None:
    group = running_group()
    props = group.body["properties"]
    main = props["containers"][0]["properties"]
    main["environmentVariables"] = ["SECRET=s3cret", {"name": "SECRET", "secureValue": "s3cret"}, 7]
    props["initContainers"][0]["properties"]["environmentVariables"] = {"name": "S", "secureValue": "s3cret"}
    props["imageRegistryCredentials"] = "registry.example:pw"
    props["containers"].append("not a container")
    rendered = render_group(group)
    assert "s3cret" not in json.dumps(rendered) and "pw" not in json.dumps(rendered)
    got = ContainerGroup.deserialize(rendered)
    assert [(v.name, v.secure_value) for v in got.containers[0].environment_variables] == [("SECRET", None)]
    assert got.init_containers[0].environment_variables == [] and got.image_registry_credentials == []
    assert [c.name for c in got.containers] == ["main"]
    assert got.containers[0].instance_view.restart_count == 1  # the well-formed container keeps its view
    assert main["environmentVariables"][0] == "SECRET=s3cret"  # the stored body is left as it was


def test_a_pending_group_without_runs_renders_without_container_views() -> None:
    group = Group(key=f"{SUB}/rg/new", subscription=SUB, resource_group="rg", name="new", body=sent_body())
    got = ContainerGroup.deserialize(render_group(group))
    assert (got.provisioning_state, got.containers[0].instance_view) == ("Pending", None)


def test_a_deleted_group_renders_as_it_was_with_provisioning_done() -> None:
    group = running_group()
    group.provisioning_state = "Creating"
    assert ContainerGroup.deserialize(render_deleted(group)).provisioning_state == "Succeeded"
    assert group.provisioning_state == "Creating"


def test_pages_carry_a_next_link_the_sdk_follows_until_the_last() -> None:
    groups = [running_group(f"g{index}") for index in (3, 1, 4, 0, 2)]
    url = URL("http://127.0.0.1:7073/subscriptions/s/providers/Microsoft.ContainerInstance/containerGroups"
              "?api-version=2023-05-01")  # fmt: skip
    first = render_page(groups, 0, 2, url)
    page = ContainerGroupListResult.deserialize(first)
    assert [g.name for g in page.value] == ["g0", "g1"]
    assert URL(page.next_link).query == {"api-version": "2023-05-01", "$skiptoken": "2"}
    last = ContainerGroupListResult.deserialize(render_page(groups, 4, 2, URL(page.next_link)))
    assert [g.name for g in last.value] == ["g4"] and last.next_link is None


def test_operation_urls_resolve_back_to_their_group() -> None:
    group = running_group()
    url = URL(operation_url("http://127.0.0.1:7073", group, OperationKind.START, "westeurope"))
    assert url.path.startswith(f"/subscriptions/{SUB}/providers/Microsoft.ContainerInstance/locations/westeurope/")
    assert url.query["api-version"] == "2018-06-01"
    assert parse_operation_token(url.name) == ("start", group.key)
    assert parse_operation_token("not|base64!") is None and parse_operation_token("Zm9v") is None


@pytest.mark.parametrize(
    ("kind", "provisioning", "state", "status"),
    [
        (OperationKind.CREATE, "Pending", "Pending", "Pending"),
        (OperationKind.CREATE, "Creating", "Pending", "Creating"),
        (OperationKind.CREATE, "Succeeded", "Running", "Succeeded"),
        (OperationKind.START, "Creating", "Pending", "InProgress"),
        (OperationKind.START, "Succeeded", "Pending", "InProgress"),
        (OperationKind.START, "Succeeded", "Running", "Succeeded"),
        (OperationKind.CREATE, "Failed", "Failed", "Failed"),
    ],
)
def test_operation_status_follows_the_group(kind: OperationKind, provisioning: str, state: str, status: str) -> None:
    group = running_group()
    group.provisioning_state, group.state = provisioning, state
    group.failure = "no capacity" if provisioning == "Failed" else None
    document = operation_status(kind.value, group)
    assert document["status"] == status
    if status == "Failed":
        assert document["error"] == {"message": "no capacity"}  # a message and no code, as ACI's


def test_operation_status_of_a_group_that_is_gone() -> None:
    assert operation_status("delete", None) == {"status": "Succeeded"}
    assert operation_status("create", None) == {
        "status": "Failed", "error": {"message": "The container group was deleted."}
    }  # fmt: skip


def test_usages_read_back_through_the_sdk() -> None:
    rows = [
        UsageRow("ContainerGroups", "Container Groups", 2, 100),
        UsageRow("StandardCores", "Standard Cores", 1.5, 10),
    ]
    got = UsageListResult.deserialize(render_usages(rows))
    assert [(u.name.value, u.name.localized_value, u.current_value, u.limit, u.unit) for u in got.value] == [
        ("ContainerGroups", "Container Groups", 2, 100, "Count"),
        ("StandardCores", "Standard Cores", 1, 10, "Count"),  # the SDK's model holds whole numbers
    ]


def test_an_admitted_write_names_what_each_window_has_left() -> None:
    admitted = Admitted(((Window(100, 300), 99), (Window(300, 3600), 299)))
    assert remaining_headers(admitted) == {
        "x-ms-ratelimit-remaining-subscription-resource-requests-pt5m": "99",
        "x-ms-ratelimit-remaining-subscription-resource-requests-pt1h": "299",
    }
