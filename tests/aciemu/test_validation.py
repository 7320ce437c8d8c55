"""PUT validation in-process: bodies built as azure-mgmt-containerinstance models and serialized by the SDK's own
serializer (the one its client sends with), then validated; bad inputs give the ARM codes and messages the
emulator has always answered."""

from __future__ import annotations

import json
from typing import Any

import pytest
from azure.mgmt.containerinstance.models import (
    Container,
    ContainerGroup,
    EnvironmentVariable,
    InitContainerDefinition,
    ResourceRequests,
    ResourceRequirements,
)

from aciemu.arm import ArmError
from aciemu.client import emulator_client
from aciemu.limits import Priority
from aciemu.validation import (
    OsType,
    RestartPolicy,
    ValidatedGroup,
    first_image,
    pre_validation_location,
    validate_put,
)

# The SDK client owns the serializer it sends PUT bodies with; nothing is sent from here.
SDK = emulator_client("http://127.0.0.1:9", "unused")
CATALOG = {"catalog/app:1": ["python3", "app.py"]}


def catalog_command(image: str) -> list[str] | None:
    return CATALOG.get(image)


def container(name: str = "main", *, image: str | None = "python:3", command: list[str] | None = None,
              cpu: float = 1.0, memory: float = 1.5) -> Container:  # fmt: skip
    return Container(
        name=name, image=image, command=command if command is not None else ["sleep", "1"],
        resources=ResourceRequirements(requests=ResourceRequests(cpu=cpu, memory_in_gb=memory)),
        environment_variables=[EnvironmentVariable(name="PLAIN", value="p"),
                               EnvironmentVariable(name="SECRET", secure_value="s")],
    )  # fmt: skip


def model(*containers: Container, **fields: Any) -> ContainerGroup:
    fields = {"location": "westeurope", "os_type": "Linux", "restart_policy": "Never", **fields}
    return ContainerGroup(containers=list(containers) or [container()], **fields)


def wire(group: ContainerGroup) -> Any:
    """What the SDK puts on the wire for `begin_create_or_update`, read back as the emulator reads it."""
    return json.loads(json.dumps(SDK._serialize.body(group, "ContainerGroup")))


def valid(name: str, body: Any) -> ValidatedGroup:
    result = validate_put(name, body, catalog_command)
    assert isinstance(result, ValidatedGroup), result
    return result


def refused(name: str, body: Any) -> ArmError:
    result = validate_put(name, body, catalog_command)
    assert isinstance(result, ArmError), result
    return result


def test_an_sdk_body_validates_into_what_admission_reads() -> None:
    body = wire(
        model(
            container("main", cpu=1.5, memory=2), container("side", cpu=0.5, memory=0.5),
            init_containers=[InitContainerDefinition(name="init", image="busybox", command=["true"])],
            priority="Spot", location="West Europe",
        )
    )  # fmt: skip
    request = valid("job-1", body)
    assert request.body is body  # stored and echoed as sent
    assert (request.name, request.location, request.os_type) == ("job-1", "West Europe", OsType.LINUX)
    assert (request.restart_policy, request.priority) == (RestartPolicy.NEVER, Priority.SPOT)
    assert (request.cores, request.memory_gb) == (2.0, 2.5)  # init containers hold no resources


def test_absent_priority_and_restart_policy_take_arms_defaults() -> None:
    body = wire(model(restart_policy=None))
    assert "restartPolicy" not in body["properties"] and "priority" not in body["properties"]
    request = valid("g", body)
    assert (request.restart_policy, request.priority) == (RestartPolicy.ALWAYS, Priority.REGULAR)


def test_an_image_without_a_command_needs_one_from_the_catalog() -> None:
    known = Container(name="main", image="catalog/app:1",
                      resources=ResourceRequirements(requests=ResourceRequests(cpu=1, memory_in_gb=1)))  # fmt: skip
    assert valid("g", wire(model(known))).cores == 1.0
    unknown = wire(model(container(image="elsewhere/app:1", command=[])))
    error = refused("g", unknown)
    assert (error.status, error.code) == (400, "InaccessibleImage")
    assert error.message == (
        "The image 'elsewhere/app:1' in container group 'g' is not accessible. "
        "Please check the image and registry credential."
    )


@pytest.mark.parametrize(
    ("name", "group", "code", "message"),
    [
        ("Bad_Name", model(), "InvalidContainerGroupName",
         "The container group name 'Bad_Name' is invalid. A container group name must contain no more than 63 "
         "characters and must match the regex '[a-z0-9]([-a-z0-9]*[a-z0-9])?' (e.g. 'my-name')."),
        ("a--b", model(), "InvalidContainerGroupName", None),
        ("-a", model(), "InvalidContainerGroupName", None),
        ("a" * 64, model(), "InvalidContainerGroupName", None),
        ("g", model(location=None), "LocationRequired", "The location property is required for this definition."),
        ("g", model(os_type="Mac"), "InvalidOsType", "The 'osType' must be 'Linux' or 'Windows'."),
        ("g", model(restart_policy="Sometimes"), "InvalidRestartPolicy",
         "The restart policy 'Sometimes' is not supported."),
        ("g", model(container("main"), container("main")), "InvalidContainerName",
         "The container name 'main' is invalid or repeated."),
        ("g", model(container("Main")), "InvalidContainerName", "The container name 'Main' is invalid or repeated."),
        ("g", model(init_containers=[InitContainerDefinition(name="main", image="busybox", command=["true"])]),
         "InvalidContainerName", "The container name 'main' is invalid or repeated."),
        ("g", model(container(image=None)), "MissingRequiredProperty", "The container 'main' has no image."),
        ("g", model(init_containers=[InitContainerDefinition(name="init", image="busybox")]), "InaccessibleImage",
         None),
        ("g", model(container(cpu=5)), "InvalidContainerResourceRequests",
         "The cpu request of container 'main' must be >0 and <= 4."),
        ("g", model(container(cpu=0)), "InvalidContainerResourceRequests", None),
        ("g", model(container(memory=16.5)), "InvalidContainerResourceRequests",
         "The memory request of container 'main' must be >0 and <= 16 GB."),
    ],
)  # fmt: skip
def test_sdk_bodies_aci_refuses(name: str, group: ContainerGroup, code: str, message: str | None) -> None:
    error = refused(name, wire(group))
    assert (error.status, error.code) == (400, code)
    if message is not None:
        assert error.message == message


def test_the_group_name_is_checked_before_the_body() -> None:
    assert refused("Bad", "not a body").code == "InvalidContainerGroupName"


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        ([1], "InvalidRequestContent", "The request content was invalid: 'properties' is required."),
        ("text", "InvalidRequestContent", "The request content was invalid: 'properties' is required."),
        ({"location": "westeurope"}, "InvalidRequestContent", None),
        ({"location": "westeurope", "properties": {"containers": []}}, "MissingRequiredProperty",
         "At least one container is required."),
        ({"location": "westeurope", "properties": {"osType": "Linux", "containers": [1]}}, "InvalidRequestContent",
         "The request content was invalid: each container must be an object with 'name' and 'properties'."),
        ({"location": "westeurope", "properties": {"osType": ["Linux"], "containers": [{}]}}, "InvalidOsType", None),
        ({"location": "westeurope", "properties": {"osType": "Linux", "containers": [{"name": "m"}],
                                                   "initContainers": {"name": "i"}}}, "InvalidRequestContent", None),
    ],
)  # fmt: skip
def test_shapes_the_sdk_never_sends_are_4xx_too(body: Any, code: str, message: str | None) -> None:
    error = refused("g", body)
    assert (error.status, error.code) == (400, code)
    if message is not None:
        assert error.message == message


def test_a_cpu_given_as_text_is_refused() -> None:
    body = wire(model())
    body["properties"]["containers"][0]["properties"]["resources"]["requests"]["cpu"] = "1"
    assert refused("g", body).message == "The cpu request of container 'main' must be >0 and <= 4."


def test_what_the_front_door_reads_survives_any_shape() -> None:
    body = wire(model(container(image="registry/app:2")))
    assert (pre_validation_location(body), first_image(body)) == ("westeurope", "registry/app:2")
    for odd in (None, [], "x", {"location": ""}, {"properties": {"containers": [1]}}, {"properties": []}):
        assert pre_validation_location(odd) is None and first_image(odd) is None


# -- fields of another JSON type than the 2023-05-01 schema gives them ------------------------------------------


def with_container_field(field: str, value: Any) -> dict[str, Any]:
    body: dict[str, Any] = wire(model())
    body["properties"]["containers"][0]["properties"][field] = value
    return body


def with_group_field(field: str, value: Any) -> dict[str, Any]:
    body: dict[str, Any] = wire(model())
    body["properties"][field] = value
    return body


ENV_MESSAGE = (
    "The request content was invalid: 'environmentVariables' must be a list of objects with a string 'name' in "
    "container 'main'."
)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (with_container_field("environmentVariables", {"name": "A", "value": "1"}), ENV_MESSAGE),
        (with_container_field("environmentVariables", ["A=1"]), ENV_MESSAGE),
        (with_container_field("environmentVariables", [{"value": "1"}]), ENV_MESSAGE),
        (with_container_field("environmentVariables", [{"name": "A", "secureValue": {"s": 1}}]), ENV_MESSAGE),
        (with_container_field("command", "sleep 1"),
         "The request content was invalid: 'command' must be a list of strings in container 'main'."),
        (with_container_field("command", ["sleep", ["1"]]),
         "The request content was invalid: 'command' must be a list of strings in container 'main'."),
        (with_container_field("image", {"name": "python:3"}),
         "The request content was invalid: 'image' must be a string in container 'main'."),
        (with_container_field("ports", [{"port": "80"}]),
         "The request content was invalid: 'ports' must be a list of objects with an integer 'port' in container "
         "'main'."),
        (with_container_field("volumeMounts", [{"name": "v"}]),
         "The request content was invalid: 'volumeMounts' must be a list of objects with a string 'name' and a "
         "string 'mountPath' in container 'main'."),
        (with_group_field("imageRegistryCredentials", {"server": "r", "password": "pw"}),
         "The request content was invalid: 'imageRegistryCredentials' must be a list of objects with a string "
         "'server'."),
        (with_group_field("imageRegistryCredentials", ["r"]), None),
        (with_group_field("volumes", [{"emptyDir": {}}]),
         "The request content was invalid: 'volumes' must be a list of objects with a string 'name'."),
        ({**wire(model()), "location": {"name": "westeurope"}},
         "The request content was invalid: 'location' must be a string."),
    ],
)  # fmt: skip
def test_fields_of_the_wrong_type_are_invalid_request_content(body: Any, message: str | None) -> None:
    error = refused("g", body)
    assert (error.status, error.code) == (400, "InvalidRequestContent")
    if message is not None:
        assert error.message == message


def test_an_init_containers_env_is_checked_like_a_containers() -> None:
    body = wire(model(init_containers=[InitContainerDefinition(name="init", image="busybox", command=["true"])]))
    body["properties"]["initContainers"][0]["properties"]["environmentVariables"] = {"A": "1"}
    assert refused("g", body).message == ENV_MESSAGE.replace("'main'", "'init'")


def test_a_container_name_that_is_not_text_is_invalid_request_content() -> None:
    body = wire(model())
    body["properties"]["containers"][0]["name"] = 7
    error = refused("g", body)
    assert (error.code, error.message) == (
        "InvalidRequestContent",
        "The request content was invalid: each container's 'name' must be a string.",
    )


def test_a_boolean_is_not_a_cpu_count() -> None:
    body = wire(model())
    body["properties"]["containers"][0]["properties"]["resources"]["requests"]["cpu"] = True
    assert refused("g", body).code == "InvalidContainerResourceRequests"


def test_optional_lists_may_be_null_or_empty_and_values_null() -> None:
    for field in ("environmentVariables", "ports", "volumeMounts"):
        valid("g", with_container_field(field, None))
    valid("g", with_container_field("environmentVariables", [{"name": "A", "value": None}, {"name": "B"}]))
    valid("g", with_container_field("ports", [{"port": 80, "protocol": "TCP"}]))
    valid("g", with_group_field("imageRegistryCredentials", []))
    valid("g", with_group_field("volumes", [{"name": "cache", "emptyDir": {}}]))
