"""What the emulator answers, as pure functions of stored state: a group as ARM JSON, list pages, operation status
documents and their URLs, location usages, and the rate-limit headers of an admitted write.

The shapes are those the unmodified SDK deserializes (ACI reference, sections 2.3-2.6): write-only fields
(`secureValue`, registry `password`) never come back, `instanceView` sits on the group and on each container,
`provisioningState` and `sku` are always present.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from yarl import URL

from aciemu.arm import GROUP_TYPE, PROVIDER, resource_id
from aciemu.groupstate import TRANSITIONING, Group, now_iso
from aciemu.limits import Admitted

# The api-version real ACI puts in its Azure-AsyncOperation URLs (the SDK follows the URL as given).
OPERATION_API_VERSION = "2018-06-01"


class OperationKind(StrEnum):
    """The long-running operations that hand out an Azure-AsyncOperation URL."""

    CREATE = "create"
    START = "start"
    DELETE = "delete"


def render_group(group: Group) -> dict[str, Any]:
    """The group as ARM returns it. Validation admits only well-formed bodies, but a group stored by an older
    emulator may hold lists of the wrong shape: those are rendered without the malformed entries (never echoed,
    since a malformed entry may hold a write-only secret), so one bad group cannot break a GET or a list."""
    body = copy.deepcopy(group.body)
    props = body.setdefault("properties", {})
    for kind, runs in (("containers", group.containers), ("initContainers", group.init_containers)):
        for container in _objects(props, kind):
            cprops = container.setdefault("properties", {})
            if not isinstance(cprops, dict):
                continue
            for variable in _objects(cprops, "environmentVariables"):
                variable.pop("secureValue", None)  # write-only, as in ARM
            name = container.get("name")
            run = runs.get(name) if isinstance(name, str) else None
            if run is not None:
                view: dict[str, Any] = {"restartCount": run.restart_count, "currentState": run.current,
                                        "events": run.events}  # fmt: skip
                if run.previous:
                    view["previousState"] = run.previous
                cprops["instanceView"] = view
    for credential in _objects(props, "imageRegistryCredentials"):
        credential.pop("password", None)  # write-only, as in ARM
    for volume in _objects(props, "volumes"):
        # Write-only as in ARM (a secret volume comes back as {}); the store already holds none of these, but a
        # group stored by an emulator older than that may.
        if volume.get("secret") is not None:
            volume["secret"] = {}
        if isinstance(volume.get("azureFile"), dict):
            volume["azureFile"].pop("storageAccountKey", None)
    props.setdefault("initContainers", [])
    props["sku"] = props.get("sku") or "Standard"
    props["provisioningState"] = group.provisioning_state
    props["instanceView"] = {"events": group.group_events, "state": group.state}
    body.update(
        {"id": resource_id(group.subscription, group.resource_group, group.name), "name": group.name,
         "type": GROUP_TYPE}
    )  # fmt: skip
    return body


def _objects(parent: dict[str, Any], key: str) -> list[dict[str, Any]]:
    """`parent[key]` kept to its object entries (and set to that list): what is not a list of objects is dropped."""
    found = parent.get(key)
    if found is None:
        return []
    kept = [item for item in found if isinstance(item, dict)] if isinstance(found, list) else []
    parent[key] = kept
    return kept


def render_deleted(group: Group) -> dict[str, Any]:
    """The body of a 200 DELETE: the group as it was, its provisioning done."""
    rendered = render_group(group)
    rendered["properties"]["provisioningState"] = "Succeeded"
    return rendered


def render_page(groups: Sequence[Group], skip: int, page_size: int, url: URL) -> dict[str, Any]:
    """One page of a list, ordered by key; `nextLink` is `url` with `$skiptoken` moved on, as the SDK follows it."""
    ordered = sorted(groups, key=lambda g: g.key)
    body: dict[str, Any] = {"value": [render_group(g) for g in ordered[skip : skip + page_size]]}
    if skip + page_size < len(ordered):
        query = dict(url.query)
        query["$skiptoken"] = str(skip + page_size)
        body["nextLink"] = str(url.with_query(query))
    return body


def operation_token(kind: OperationKind, key: str) -> str:
    """The operation id: the kind and the group's key, so it resolves after an emulator restart too."""
    return base64.urlsafe_b64encode(f"{kind.value}|{key}".encode()).decode().rstrip("=")


def parse_operation_token(token: str) -> tuple[str, str] | None:
    """(kind, group key), or None for a token this emulator did not hand out."""
    try:
        kind, key = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode().split("|", 1)
    except (ValueError, UnicodeDecodeError):
        return None
    return kind, key


def operation_url(origin: str, group: Group, kind: OperationKind, location: str) -> str:
    """The Azure-AsyncOperation URL for `kind` on `group`, on this emulator (`origin`: scheme://host:port)."""
    return (
        f"{origin}/subscriptions/{group.subscription}/providers/{PROVIDER}/locations/{location}"
        f"/operations/{operation_token(kind, group.key)}?api-version={OPERATION_API_VERSION}"
    )


def operation_status(kind: str, group: Group | None) -> dict[str, Any]:
    """The status document ARMPolling reads: InProgress-like states until the group settles."""
    if group is None:
        if kind == OperationKind.DELETE:
            return {"status": "Succeeded"}
        return {"status": "Failed", "error": {"message": "The container group was deleted."}}
    base: dict[str, Any] = {
        "id": resource_id(group.subscription, group.resource_group, group.name),
        "startTime": now_iso(),
        "properties": {"events": group.group_events},
    }
    if group.provisioning_state == "Failed":
        return {**base, "status": "Failed", "error": {"message": group.failure or "Provisioning failed."}}
    if group.provisioning_state in TRANSITIONING or (kind == OperationKind.START and group.state == "Pending"):
        return {**base, "status": group.provisioning_state if kind == OperationKind.CREATE else "InProgress"}
    return {**base, "status": "Succeeded"}


@dataclass(frozen=True)
class UsageRow:
    name: str  # the quota name ACI reports (`ContainerGroups`, `StandardCores`, `StandardSpotCores`)
    label: str
    current: float
    limit: float


def render_usages(rows: Sequence[UsageRow]) -> dict[str, Any]:
    return {
        "value": [
            {"unit": "Count", "currentValue": row.current, "limit": row.limit,
             "name": {"value": row.name, "localizedValue": row.label}}
            for row in rows
        ]
    }  # fmt: skip


def remaining_headers(admitted: Admitted) -> dict[str, str]:
    """What ARM tells a caller about each window after an admitted write (seen on real ACI PUTs:
    `x-ms-ratelimit-remaining-subscription-resource-requests-pt5m: 99` and `...-pt1h: 299`)."""
    prefix = "x-ms-ratelimit-remaining-subscription-resource-requests-"
    return {prefix + window.iso_duration(): str(left) for window, left in admitted.remaining}
