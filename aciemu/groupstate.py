"""A container group's stored state: its definition as PUT (`body`) and the runtime view of the group and of each
container (states, restart counts, events), saved as one private JSON file per group; and the small file helpers
the store uses. The lifecycle that changes this state is `groups.GroupRuntime`.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

EVENTS_KEPT = 50
# Provisioning states during which ACI refuses updates and actions with ContainerGroupTransitioning.
TRANSITIONING = frozenset({"Pending", "Creating"})


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Timings:
    provisioning_seconds: float = 0.02  # Pending -> Creating -> containers started
    restart_backoff_scale: float = 1.0
    eviction_restart_seconds: float = 1.0
    stop_grace_seconds: float = 2.0


@dataclass
class ContainerRun:
    name: str
    restart_count: int = 0
    current: dict[str, Any] = field(default_factory=lambda: {"state": "Waiting", "detailStatus": "Pending"})
    previous: dict[str, Any] | None = None
    events: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "restartCount": self.restart_count, "current": self.current,
                "previous": self.previous, "events": self.events}  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ContainerRun:
        return cls(data["name"], data["restartCount"], data["current"], data.get("previous"), data["events"])

    def event(self, name: str, message: str, kind: str = "Normal") -> None:
        stamp = now_iso()
        self.events.append({"count": 1, "firstTimestamp": stamp, "lastTimestamp": stamp, "name": name,
                            "message": message, "type": kind})  # fmt: skip
        del self.events[:-EVENTS_KEPT]

    def terminated(self, exit_code: int, detail: str) -> None:
        start = self.current.get("startTime") if self.current.get("state") == "Running" else None
        self.previous = self.current if self.current.get("state") != "Waiting" else self.previous
        self.current = {
            "state": "Terminated",
            "exitCode": exit_code,
            "detailStatus": detail,
            "finishTime": now_iso(),
        }
        if start:
            self.current["startTime"] = start


@dataclass
class Group:
    """A container group: the PUT body as stored (`body`) plus the runtime view."""

    key: str  # "<sub>/<rg>/<name>" lower-cased: ARM names are case-insensitive
    subscription: str
    resource_group: str
    name: str
    body: dict[str, Any]
    provisioning_state: str = "Pending"
    state: str = "Pending"
    group_events: list[dict[str, Any]] = field(default_factory=list)
    containers: dict[str, ContainerRun] = field(default_factory=dict)
    init_containers: dict[str, ContainerRun] = field(default_factory=dict)
    faults: list[dict[str, Any]] = field(default_factory=list)  # life faults drawn at create
    created: float = field(default_factory=time.time)
    failure: str | None = None

    @property
    def properties(self) -> dict[str, Any]:
        props: dict[str, Any] = self.body.setdefault("properties", {})
        return props

    @property
    def location(self) -> str:
        return str(self.body.get("location", ""))

    @property
    def restart_policy(self) -> str:
        return str(self.properties.get("restartPolicy") or "Always")

    @property
    def cores(self) -> float:
        return sum(
            float(c.get("properties", {}).get("resources", {}).get("requests", {}).get("cpu", 0))
            for c in self.properties.get("containers", [])
        )

    @property
    def volumes(self) -> list[dict[str, Any]]:
        found = self.properties.get("volumes")
        return [v for v in found if isinstance(v, dict)] if isinstance(found, list) else []

    def spec_containers(self, init: bool = False) -> list[dict[str, Any]]:
        return list(self.properties.get("initContainers" if init else "containers") or [])

    def group_event(self, name: str, message: str, kind: str = "Normal") -> None:
        stamp = now_iso()
        self.group_events.append({"count": 1, "firstTimestamp": stamp, "lastTimestamp": stamp, "name": name,
                                  "message": message, "type": kind})  # fmt: skip
        del self.group_events[:-EVENTS_KEPT]

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key, "subscription": self.subscription, "resourceGroup": self.resource_group,
            "name": self.name, "body": self.body, "provisioningState": self.provisioning_state, "state": self.state,
            "groupEvents": self.group_events, "containers": [c.to_dict() for c in self.containers.values()],
            "initContainers": [c.to_dict() for c in self.init_containers.values()], "faults": self.faults,
            "created": self.created, "failure": self.failure,
        }  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Group:
        return cls(
            key=data["key"], subscription=data["subscription"], resource_group=data["resourceGroup"],
            name=data["name"], body=data["body"], provisioning_state=data["provisioningState"], state=data["state"],
            group_events=data["groupEvents"],
            containers={c["name"]: ContainerRun.from_dict(c) for c in data["containers"]},
            init_containers={c["name"]: ContainerRun.from_dict(c) for c in data["initContainers"]},
            faults=data.get("faults", []), created=data.get("created", time.time()), failure=data.get("failure"),
        )  # fmt: skip


def write_private_file(path: Path, data: bytes) -> None:
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(temporary, path)
