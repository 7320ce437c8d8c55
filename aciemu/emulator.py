"""The `Emulator`: ACI's container group operations on plain values (names, JSON bodies), over the group store,
the groups' runtimes, admission, the fault book and the image catalog. It knows nothing of HTTP: the routes
(`routes.py`) parse requests, call it, and render what it returns; a refusal is an `ArmFailure`.

The order of checks in a PUT is ARM's: the front door counts the write before the resource provider sees it, so
a PUT refused for its content, its quota or a fault still counts (see aciemu/README.md, "Subscription limits").
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from aciemu import admission, sandbox, volumes
from aciemu.arm import (
    ArmError,
    ArmFailure,
    inaccessible_image,
    log_not_available,
    not_found,
    quota_reached,
    throttled,
    transitioning,
)
from aciemu.faults import API_FAULTS, LIFE_FAULTS, Fault, FaultBook, Operation
from aciemu.groups import GroupRuntime
from aciemu.groupstate import TRANSITIONING, Group, Timings
from aciemu.images import ImageEntry, lookup, parse_catalog
from aciemu.limits import Limits, Window, WriteKind
from aciemu.rendering import UsageRow, operation_status, parse_operation_token
from aciemu.store import GroupStore, group_key
from aciemu.validation import ValidatedGroup, first_image, pre_validation_location, validate_put

CREATE_RATE_WINDOW_SECONDS = 300  # `--create-rate N`: N creates per 5 minutes, ACI's short window


class GroupAction(StrEnum):
    """The POST actions on a group (the last segment of their path)."""

    STOP = "stop"
    START = "start"
    RESTART = "restart"


@dataclass(frozen=True)
class PutOutcome:
    group: Group
    replaced: bool  # an update of an existing group (200) rather than a create (201)
    rate_headers: dict[str, str]


def refuse(error: ArmError | None) -> None:
    if error is not None:
        raise ArmFailure(error)


class Emulator:
    def __init__(
        self,
        data_dir: Path,
        location: str = "westeurope",
        max_groups: int = 100,
        max_cores: float = 100.0,
        create_rate: int | None = None,
        page_size: int = 100,
        images: dict[str, ImageEntry] | dict[str, list[str]] | None = None,
        timings: Timings | None = None,
        use_bwrap: bool | None = None,
        fault_seed: int | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.location = location
        self.max_groups, self.max_cores = max_groups, max_cores
        self.page_size = page_size
        self.images: dict[str, ImageEntry] = {
            pattern: entry if isinstance(entry, ImageEntry) else parse_catalog({pattern: entry}, Path.cwd())[pattern]
            for pattern, entry in (images or {}).items()
        }
        self.timings = timings or Timings()
        self.use_bwrap = sandbox.bwrap_path() is not None if use_bwrap is None else use_bwrap
        self.faults = FaultBook(fault_seed)
        self.store = GroupStore(data_dir)
        self.runtimes: dict[str, GroupRuntime] = {}
        # Secret volume files by group key: in memory only, never in a group's file (see volumes.take_secrets).
        self.secrets: dict[str, volumes.Secrets] = {}
        limits = limits or Limits()
        if create_rate is not None and not limits.create_windows:  # the older flag: one 5-minute create window
            limits = dataclasses.replace(limits, create_windows=(Window(create_rate, CREATE_RATE_WINDOW_SECONDS),))
        self.set_limits(limits)
        self.instance_marker = "aciemu-" + hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:12]
        sandbox.write_identity_files(data_dir / "sandbox")

    # -- what a group's runtime asks of its host (groups.RuntimeHost) -----------------------------------------

    def holds(self, group: Group) -> bool:
        return group.key in self.store

    def save(self, group: Group) -> None:
        self.store.save(group)

    def log_dir(self, group: Group) -> Path:
        return self.store.log_dir(group)

    def catalog_command(self, image: str) -> list[str] | None:
        entry = lookup(self.images, image)
        return list(entry.command) if entry is not None and entry.command else None

    def container_files(self, group: Group, container: str, image: str) -> sandbox.ContainerFiles:
        """Each container's own home and /tmp (containers of one group share no files but the volumes they mount,
        as in ACI)."""
        own = self.store.work_dir(group) / container
        entry = lookup(self.images, image)
        specs = [*group.spec_containers(init=True), *group.spec_containers()]
        spec = next((s for s in specs if s["name"] == container), {})
        mounts = volumes.mounts_for(spec, group.volumes, self.volume_root(group), self.secrets.get(group.key, {}))
        return sandbox.ContainerFiles(
            home=own / "home", tmp=own / "tmp", etc=self.data_dir / "sandbox",
            image_dir=entry.dir if entry else None, image_workdir=entry.workdir if entry else None, mounts=mounts,
        )  # fmt: skip

    def discard(self, path: Path) -> None:
        self.store.trash.discard(path)  # out of the way now, deleted in the background (`aciemu.trash`)

    def volume_root(self, group: Group) -> Path:
        # "_" cannot start a container name, so this never meets a container's own folder beside it.
        return self.store.work_dir(group) / "_volumes"

    def reset_volumes(self, group: Group) -> None:
        """Empty the group's emptyDir folders: a new deployment (create, start, restart, a move) starts without
        their data, as ACI promises nothing of it across a group restart and drops it on a stop."""
        root = self.volume_root(group)
        self.discard(root)
        for name in volumes.empty_dirs(group.volumes):
            (root / name).mkdir(parents=True, mode=0o700)

    def clear_volumes(self, group: Group) -> None:
        self.discard(self.volume_root(group))

    def missing_secrets(self, group: Group) -> list[str]:
        """The group's secret volumes whose files this emulator no longer holds (it keeps them in memory only,
        so after an emulator restart it has none)."""
        held = self.secrets.get(group.key, {})
        return [name for name in volumes.secret_volumes(group.volumes) if name not in held]

    async def delete_group(self, group: Group) -> None:
        """Remove the group and its files at once, then stop its processes.

        Everything of the group's is taken before the first await: a group of the same name created while its
        processes stop (a PUT, or the app creating it again after a `vanish` fault) is a new group, and nothing of
        this delete may touch its file or folders. The moved folders are deleted once the processes are gone (a
        process still running would go on writing into them)."""
        runtime = self.runtimes.pop(group.key, None)
        self.store.forget(group)
        self.secrets.pop(group.key, None)
        moved = self.store.erase(group)
        try:
            if runtime is not None:
                await runtime.stop_processes()
        finally:
            for folder in moved:
                self.store.trash.delete_later(folder)

    # -- start and stop --------------------------------------------------------------------------------------

    async def load(self) -> None:
        """Start on the stored groups as a host reboot would (see `GroupRuntime.reboot`)."""
        for group in self.store.read_all():
            # An emulator older than secret volumes stored their values in the group's file: move them to memory
            # and rewrite the file without them. (A file written since holds `"secret": {}`: nothing is held.)
            if held := {name: files for name, files in volumes.take_secrets(group.body).items() if files}:
                self.secrets[group.key] = held
                self.store.save(group)
            runtime = GroupRuntime(group, self)
            self.runtimes[group.key] = runtime
            sandbox.kill_marked(runtime.marker)  # leftovers of a crashed emulator without bubblewrap
            await runtime.reboot()

    async def shutdown(self) -> None:
        for runtime in list(self.runtimes.values()):
            await runtime.stop_processes()

    def set_limits(self, limits: Limits) -> None:
        """Enforce `limits` from now on; the rate windows start empty."""
        self.limits = limits
        self.writes = limits.limiter()

    # -- API faults ------------------------------------------------------------------------------------------

    def check_api_faults(self, op: Operation, name: str, image: str | None) -> None:
        for rule in self.faults.draw(op, name, image, API_FAULTS):
            if rule.fault == Fault.THROTTLE:
                seconds = rule.params.get("retryAfter", 1)
                raise ArmFailure(throttled("TooManyRequests", "Too many requests; retry later.", seconds))
            if rule.fault == Fault.QUOTA:
                raise ArmFailure(quota_reached(admission.GROUP_QUOTA, self.location, 0, 0, 1))
            if rule.fault == Fault.PULL_FAILURE and op == Operation.CREATE:
                raise ArmFailure(inaccessible_image(image or "", name))
            if rule.fault == Fault.ERROR:
                status = int(rule.params.get("status", 500))
                code = rule.params.get("code", "InternalServerError")
                raise ArmFailure(ArmError(status, code, str(rule.params.get("message", "An internal error occurred."))))

    # -- operations ------------------------------------------------------------------------------------------

    def find(self, subscription: str, resource_group: str, name: str) -> Group:
        group = self.store.get(group_key(subscription, resource_group, name))
        if group is None:
            raise ArmFailure(not_found(name, resource_group))
        return group

    def get(self, subscription: str, resource_group: str, name: str) -> Group:
        self.check_api_faults(Operation.GET, name, None)
        return self.find(subscription, resource_group, name)

    async def put(self, subscription: str, resource_group: str, name: str, body: Any) -> PutOutcome:
        # ARM counts every PUT it forwards (creates and updates alike: it cannot tell them apart), before the
        # resource provider validates anything.
        location = pre_validation_location(body) or self.location
        rate_headers = self.admit(WriteKind.CREATE, subscription, location)
        image = first_image(body)
        self.check_api_faults(Operation.CREATE, name, image)
        request = validate_put(name, body, self.catalog_command)
        if isinstance(request, ArmError):
            raise ArmFailure(request)
        key = group_key(subscription, resource_group, name)
        existing = self.store.get(key)
        if existing is not None and existing.provisioning_state in TRANSITIONING:
            raise ArmFailure(transitioning(name))
        refuse(admission.spot_refusal(request, self.limits))
        refuse(self.quota_refusal(subscription, request, existing))
        secrets = volumes.take_secrets(request.body)
        group = Group(key=key, subscription=subscription, resource_group=resource_group, name=name, body=request.body)
        life_faults = self.faults.draw(Operation.CREATE, name, image, LIFE_FAULTS)
        group.faults = [{"fault": rule.fault, **rule.params} for rule in life_faults]
        if existing is not None:
            await self.runtimes[key].stop_processes(reason_event="Killing")
            group.containers = existing.containers
        runtime = GroupRuntime(group, self)
        self.runtimes[key] = runtime
        self.secrets[key] = secrets
        self.store.put(group)
        runtime.start()
        return PutOutcome(group, existing is not None, rate_headers)

    def admit(self, kind: WriteKind, subscription: str, location: str) -> dict[str, str]:
        verdict = admission.admit_write(self.writes, kind, subscription, location)
        if isinstance(verdict, ArmError):
            raise ArmFailure(verdict)
        return verdict

    def quota_refusal(self, subscription: str, request: ValidatedGroup, replacing: Group | None) -> ArmError | None:
        region = admission.in_region(self.store, subscription, request.location, self.location)
        others = [g for g in region if g is not replacing]
        return admission.quota_refusal(request, others, self.limits, self.max_groups, self.max_cores, self.location)

    def update_tags(self, subscription: str, resource_group: str, name: str, body: Any) -> Group:
        """PATCH: ACI's update changes tags only; anything else in the body is ignored."""
        group = self.find(subscription, resource_group, name)
        if isinstance(body, dict) and isinstance(body.get("tags"), dict):
            group.body["tags"] = body["tags"]
            self.save(group)
        return group

    def admit_delete(self, subscription: str, resource_group: str, name: str) -> tuple[dict[str, str], Group | None]:
        """A DELETE up to the point of deleting: counted like ARM counts it, at the front door (a delete of a
        missing group counts too), then faults; returns the rate headers and the group, None when absent."""
        known = self.store.get(group_key(subscription, resource_group, name))
        location = str(known.body.get("location") or self.location) if known else self.location
        rate_headers = self.admit(WriteKind.DELETE, subscription, location)
        self.check_api_faults(Operation.DELETE, name, None)
        return rate_headers, self.store.get(group_key(subscription, resource_group, name))

    async def act(self, subscription: str, resource_group: str, name: str, action: GroupAction) -> Group | None:
        """Stop, start or restart. Returns the group when the action goes on asynchronously (a start of a group
        that is not running: 202 with an operation), None when it is done (204)."""
        self.check_api_faults(Operation(action.value), name, None)
        group = self.find(subscription, resource_group, name)
        if group.provisioning_state in TRANSITIONING and action is not GroupAction.STOP:
            raise ArmFailure(transitioning(name))
        if action is GroupAction.STOP:
            await self.stop(group)
            return None
        if action is GroupAction.RESTART:
            await self.restart(group, count_restart=True)
            return None
        if group.state == "Running":
            return None
        await self.restart(group, count_restart=False)
        return group

    async def stop(self, group: Group) -> None:
        runtime = self.runtimes[group.key]
        await runtime.stop_processes(reason_event="Killing")
        for run in [*group.containers.values(), *group.init_containers.values()]:
            if run.current.get("state") == "Running":
                run.terminated(137, "Stopped")
        for run in group.containers.values():
            if run.current.get("state") != "Terminated":
                run.terminated(137, "Stopped")
        self.clear_volumes(group)  # a stopped group's emptyDir is not kept (ACI's emptyDir article)
        group.state = "Stopped"
        if group.provisioning_state in TRANSITIONING:
            group.provisioning_state = "Succeeded"
        self.save(group)

    async def restart(self, group: Group, count_restart: bool) -> None:
        runtime = self.runtimes[group.key]
        await runtime.stop_processes(reason_event="Killing")
        for run in group.containers.values():
            if run.current.get("state") == "Running":
                run.terminated(137, "Killed")
            if count_restart:
                run.restart_count += 1
        group.state = "Pending"
        runtime.start(after_reboot=group.provisioning_state == "Succeeded")

    def container_log(self, subscription: str, resource_group: str, name: str, container: str, tail: int | None) -> str:
        """A container's combined output; `tail`: only its last lines."""
        self.check_api_faults(Operation.LOGS, name, None)
        group = self.find(subscription, resource_group, name)
        path = self.log_dir(group) / f"{container}.log"
        if (container not in group.containers and container not in group.init_containers) or not path.exists():
            raise ArmFailure(log_not_available(container, name))
        content = path.read_bytes().decode("utf-8", "replace")
        if tail is not None:
            content = "".join(content.splitlines(keepends=True)[-tail:]) if tail else ""
        return content

    def list_groups(self, subscription: str, resource_group: str | None = None) -> list[Group]:
        """The groups of a subscription, or of one of its resource groups."""
        self.check_api_faults(Operation.LIST, "", None)
        prefix = f"{subscription}/" if resource_group is None else f"{subscription}/{resource_group}/"
        return self.store.with_prefix(prefix)

    def operation_status(self, token: str) -> dict[str, Any]:
        parsed = parse_operation_token(token)
        if parsed is None:
            raise ArmFailure(ArmError(404, "OperationNotFound", "The operation was not found."))
        kind, key = parsed
        return operation_status(kind, self.store.get(key))

    def usages(self, subscription: str, location: str) -> list[UsageRow]:
        groups = admission.in_region(self.store, subscription, location, self.location)
        return admission.usage_rows(groups, self.limits, self.max_groups, self.max_cores)

    def health(self) -> dict[str, Any]:
        """Readiness: no group is named, only a count (the one answer open without the token)."""
        return {"status": "ok", "groups": len(self.store), "bwrap": self.use_bwrap}
