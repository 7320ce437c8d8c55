"""Validation of a container group PUT, as a pure function: the JSON body in, a typed `ValidatedGroup` or the
`ArmError` ACI answers out. It sees no HTTP and no stored state; the image catalog comes in as a lookup.

The checks run in the order the emulator has always run them (the first failure is the answer). Rules: the
naming and resource rules of the ACI reference, section 6.1, and the 2023-05-01 schema in Azure/azure-rest-api-specs
`specification/containerinstance/ContainerInstance.Management/resource-manager/Microsoft.ContainerInstance/stable/
2023-05-01/containerInstance.json` (definition `ContainerGroupPropertiesProperties`: `containers` and `osType`
required; `Container`: `name` and `properties` required; the `restartPolicy`, `osType` and `priority` enums). Codes
ACI does not document for a name (`InvalidContainerGroupName`, `InvalidContainerName`) are those third parties
report.

A body whose fields have another JSON type than that schema gives them (`EnvironmentVariable`,
`ImageRegistryCredential`, `ContainerPort`, `VolumeMount`, `Volume`: objects in lists, their required names
strings; `command` a list of strings) is refused with `InvalidRequestContent`, as ARM refuses a body it cannot
deserialize; everything rendering and the runtime read from a stored group has therefore passed through here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeGuard

from aciemu import volumes
from aciemu.arm import ArmError, inaccessible_image, invalid_content
from aciemu.limits import Priority

# 1-63 lowercase letters, digits and single hyphens, neither first nor last (ACI's naming rules).
GROUP_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?!-)){0,61}[a-z0-9]$|^[a-z0-9]$")
CONTAINER_NAME = GROUP_NAME
MAX_CPU, MAX_MEMORY_GB = 4.0, 16.0

# The image catalog's default command for an image, or None when the catalog gives none.
CommandLookup = Callable[[str], Sequence[str] | None]


class OsType(StrEnum):
    LINUX = "Linux"
    WINDOWS = "Windows"


class RestartPolicy(StrEnum):
    ALWAYS = "Always"
    ON_FAILURE = "OnFailure"
    NEVER = "Never"


@dataclass(frozen=True)
class ValidatedGroup:
    """A PUT that passed validation. `body` is the request as sent (stored and echoed back as ARM does); the
    other fields are what admission reads from it."""

    name: str
    body: dict[str, Any]
    location: str
    os_type: OsType
    restart_policy: RestartPolicy
    priority: Priority
    cores: float
    memory_gb: float


def pre_validation_location(body: Any) -> str | None:
    """The location ARM's front door reads to count a write, before (and whether or not) the body is valid."""
    location = body.get("location") if isinstance(body, dict) else None
    return str(location) if location else None


def first_image(body: Any) -> str | None:
    """The first container's image, which fault rules match on at create, read without trusting the shape."""
    props = body.get("properties") if isinstance(body, dict) else None
    containers = props.get("containers") if isinstance(props, dict) else None
    if not isinstance(containers, list) or not containers or not isinstance(containers[0], dict):
        return None
    cprops = containers[0].get("properties")
    return cprops.get("image") if isinstance(cprops, dict) else None


def validate_put(name: str, body: Any, catalog_command: CommandLookup) -> ValidatedGroup | ArmError:
    if not GROUP_NAME.match(name):
        return ArmError(
            400, "InvalidContainerGroupName",
            f"The container group name '{name}' is invalid. A container group name must contain no more than "
            "63 characters and must match the regex '[a-z0-9]([-a-z0-9]*[a-z0-9])?' (e.g. 'my-name').",
        )  # fmt: skip
    if not isinstance(body, dict) or not isinstance(body.get("properties"), dict):
        return invalid_content("The request content was invalid: 'properties' is required.")
    if not body.get("location"):
        return ArmError(400, "LocationRequired", "The location property is required for this definition.")
    props = body["properties"]
    containers = props.get("containers")
    if not isinstance(containers, list) or not containers:
        return ArmError(400, "MissingRequiredProperty", "At least one container is required.")
    if not _one_of(props.get("osType"), OsType):
        return ArmError(400, "InvalidOsType", "The 'osType' must be 'Linux' or 'Windows'.")
    policy = props.get("restartPolicy")
    if policy is not None and not _one_of(policy, RestartPolicy):
        return ArmError(400, "InvalidRestartPolicy", f"The restart policy '{policy}' is not supported.")
    init_containers = props.get("initContainers") or []
    if not isinstance(init_containers, list):
        return invalid_content("The request content was invalid: 'initContainers' must be a list of containers.")
    if not isinstance(body["location"], str):
        return invalid_content("The request content was invalid: 'location' must be a string.")
    problem = _list_problem(props, "imageRegistryCredentials", required=("server",))
    problem = problem or _list_problem(props, "volumes", required=("name",))
    if problem is not None:
        return invalid_content(f"The request content was invalid: {problem}.")
    refused = _check_containers(name, [*containers, *init_containers], catalog_command)
    refused = refused or volumes.check(props, [*containers, *init_containers])
    if refused is not None:
        return refused
    cores = memory = 0.0
    for container in containers:
        requests = _requests(container)
        cpu, memory_gb = requests.get("cpu"), requests.get("memoryInGB")
        if not _is_number(cpu) or not 0 < cpu <= MAX_CPU:
            return ArmError(
                400, "InvalidContainerResourceRequests",
                f"The cpu request of container '{container['name']}' must be >0 and <= {MAX_CPU:g}.",
            )  # fmt: skip
        if not _is_number(memory_gb) or not 0 < memory_gb <= MAX_MEMORY_GB:
            return ArmError(
                400, "InvalidContainerResourceRequests",
                f"The memory request of container '{container['name']}' must be >0 and <= {MAX_MEMORY_GB:g} GB.",
            )  # fmt: skip
        cores += float(cpu)
        memory += float(memory_gb)
    return ValidatedGroup(
        name=name,
        body=body,
        location=str(body["location"]),
        os_type=OsType(props["osType"]),
        restart_policy=RestartPolicy(policy or RestartPolicy.ALWAYS),  # ARM's default when none is given
        priority=Priority.SPOT if props.get("priority") == Priority.SPOT.value else Priority.REGULAR,
        cores=cores,
        memory_gb=memory,
    )


def _check_containers(group: str, containers: list[Any], catalog_command: CommandLookup) -> ArmError | None:
    """Names unique and well formed, and an image each that has a command (given, or the catalog's)."""
    seen: set[str] = set()
    for container in containers:
        if not isinstance(container, dict) or not isinstance(container.get("properties") or {}, dict):
            return invalid_content(
                "The request content was invalid: each container must be an object with 'name' and 'properties'."
            )
        cname = container.get("name", "")
        if not isinstance(cname, str):
            return invalid_content("The request content was invalid: each container's 'name' must be a string.")
        if not CONTAINER_NAME.match(cname) or cname in seen:
            return ArmError(400, "InvalidContainerName", f"The container name '{cname}' is invalid or repeated.")
        seen.add(cname)
        cprops = container.get("properties") or {}
        image = cprops.get("image")
        if not image:
            return ArmError(400, "MissingRequiredProperty", f"The container '{cname}' has no image.")
        problem = _container_problem(cprops)
        if problem is not None:
            return invalid_content(f"The request content was invalid: {problem} in container '{cname}'.")
        if not cprops.get("command") and catalog_command(image) is None:
            return inaccessible_image(image, group)
    return None


def _container_problem(cprops: dict[str, Any]) -> str | None:
    """What in a container's properties has another JSON type than the schema's (None when all match); the
    runtime and rendering read these fields without checking them again."""
    if not isinstance(cprops["image"], str):
        return "'image' must be a string"
    command = cprops.get("command")
    if command is not None and not (isinstance(command, list) and all(isinstance(arg, str) for arg in command)):
        return "'command' must be a list of strings"
    problem = _list_problem(cprops, "environmentVariables", required=("name",), optional=("value", "secureValue"))
    problem = problem or _list_problem(cprops, "volumeMounts", required=("name", "mountPath"))
    if problem is None:
        ports = cprops.get("ports")
        if ports is not None and not (
            isinstance(ports, list) and all(isinstance(p, dict) and _is_integer(p.get("port")) for p in ports)
        ):
            problem = "'ports' must be a list of objects with an integer 'port'"
    return problem


def _list_problem(parent: dict[str, Any], key: str, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> (
    str | None
):  # fmt: skip
    """`parent[key]`, when present, must be a list of objects whose `required` fields are strings and whose
    `optional` ones are strings or null; a description of the mismatch, or None."""
    items = parent.get(key)
    if items is None:
        return None
    ok = isinstance(items, list) and all(
        isinstance(item, dict)
        and all(isinstance(item.get(field), str) for field in required)
        and all(isinstance(item.get(field), str | None) for field in optional)
        for item in items
    )
    if ok:
        return None
    wanted = " and ".join(f"a string '{field}'" for field in required)
    return f"'{key}' must be a list of objects with {wanted}"


def _is_number(value: Any) -> TypeGuard[float]:
    """A JSON number (a bool is an int to Python, not a number to ARM's deserializer)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_integer(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _one_of(value: Any, allowed: type[StrEnum]) -> bool:
    return isinstance(value, str) and value in {member.value for member in allowed}


def _requests(container: dict[str, Any]) -> dict[str, Any]:
    """`properties.resources.requests`, or {} when any level is missing or not an object."""
    level: Any = container
    for key in ("properties", "resources", "requests"):
        level = level.get(key) if isinstance(level, dict) else None
    return level if isinstance(level, dict) else {}
