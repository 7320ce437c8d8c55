"""The ARM HTTP surface of the emulator (api-version 2023-05-01) and the `Emulator` that owns all groups.

Responses follow what the real SDK accepts (see the ACI reference): PUT answers 201/200 with
`provisioningState: Pending` and an `Azure-AsyncOperation` header pointing back here; stop and restart
answer exactly 204; start answers 202 with the header; delete answers 200 with the body (204 when absent);
errors use the ARM envelope `{"error": {"code", "message"}}`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import dataclasses
import hashlib
import json
import re
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

from aciemu import auth, sandbox
from aciemu.faults import API_FAULTS, LIFE_FAULTS, FaultBook, FaultRuleInvalid
from aciemu.groups import Group, GroupRuntime, Timings, now_iso, remove_tree, write_private_file
from aciemu.images import ImageEntry, lookup, parse_catalog
from aciemu.limits import Admitted, Limits, LimitsInvalid, Priority, Throttled, Window, WriteKind, normalize_location
from localtools import fastjson

PROVIDER = "Microsoft.ContainerInstance"
GROUP_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?!-)){0,61}[a-z0-9]$|^[a-z0-9]$")
CONTAINER_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?!-)){0,61}[a-z0-9]$|^[a-z0-9]$")
MAX_CPU, MAX_MEMORY_GB = 4.0, 16.0
RESTART_POLICIES = {"Always", "OnFailure", "Never"}
CREATE_RATE_WINDOW_SECONDS = 300  # `--create-rate N`: N creates per 5 minutes, ACI's short window
TRANSITIONING = {"Pending", "Creating"}
UNISOLATED_WARNING = (
    "WARNING: bubblewrap is not in use, so containers are NOT isolated: every container can read all files "
    "this emulator can (other groups' secure values, devhost's data, your home) and see other containers' "
    "processes. Install bubblewrap (apt-get install bubblewrap) for tenant isolation."
)


class ArmFailure(Exception):
    def __init__(self, status: int, code: str | None, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def arm_json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=fastjson.dumps(body), status=status, headers=headers,
        content_type="application/json", charset="utf-8",
    )  # fmt: skip


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
        self.groups: dict[str, Group] = {}
        self.runtimes: dict[str, GroupRuntime] = {}
        self.saved: dict[str, bytes] = {}  # what each group's file holds
        limits = limits or Limits()
        if create_rate is not None and not limits.create_windows:  # the older flag: one 5-minute create window
            limits = dataclasses.replace(limits, create_windows=(Window(create_rate, CREATE_RATE_WINDOW_SECONDS),))
        self.set_limits(limits)
        self.instance_marker = "aciemu-" + hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:12]
        for folder in ("groups", "logs", "work"):
            (data_dir / folder).mkdir(parents=True, exist_ok=True)
        sandbox.write_identity_files(data_dir / "sandbox")

    # -- storage ---------------------------------------------------------------------------------------------

    def _file(self, key: str) -> str:
        return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")

    def save(self, group: Group) -> None:
        if group.key not in self.groups:
            return
        data = fastjson.dumps(group.to_dict())
        # A group's runtime saves after each step, and some steps change nothing (the end of a run saves what
        # its last container's exit saved): skip rewriting a file that would not change.
        if self.saved.get(group.key) != data:
            write_private_file(self.data_dir / "groups" / f"{self._file(group.key)}.json", data)
            self.saved[group.key] = data

    def log_dir(self, group: Group) -> Path:
        path = self.data_dir / "logs" / self._file(group.key)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def work_dir(self, group: Group) -> Path:
        return self.data_dir / "work" / self._file(group.key)

    def container_files(self, group: Group, container: str, image: str) -> sandbox.ContainerFiles:
        """Each container's own home and /tmp (containers of one group share no files, as in ACI)."""
        own = self.work_dir(group) / container
        entry = self.image_entry(image)
        return sandbox.ContainerFiles(
            home=own / "home", tmp=own / "tmp", etc=self.data_dir / "sandbox",
            image_dir=entry.dir if entry else None, image_workdir=entry.workdir if entry else None,
        )  # fmt: skip

    async def load(self) -> None:
        for path in sorted((self.data_dir / "groups").glob("*.json")):
            group = Group.from_dict(json.loads(path.read_text()))
            self.groups[group.key] = group
            runtime = GroupRuntime(group, self)
            self.runtimes[group.key] = runtime
            sandbox.kill_marked(runtime.marker)  # leftovers of a crashed emulator without bubblewrap
            await runtime.reboot()

    async def shutdown(self) -> None:
        for runtime in list(self.runtimes.values()):
            await runtime.stop_processes()

    def image_entry(self, image: str) -> ImageEntry | None:
        return lookup(self.images, image)

    def catalog_command(self, image: str) -> list[str] | None:
        entry = self.image_entry(image)
        return list(entry.command) if entry is not None and entry.command else None

    # -- quota, throttling, faults ---------------------------------------------------------------------------

    def check_api_faults(self, op: str, name: str, image: str | None) -> None:
        for rule in self.faults.draw(op, name, image, API_FAULTS):
            if rule.fault == "throttle":
                seconds = str(rule.params.get("retryAfter", 1))
                raise ArmFailure(429, "TooManyRequests", "Too many requests; retry later.", {"Retry-After": seconds})
            if rule.fault == "quota":
                raise ArmFailure(400, "ContainerGroupQuotaReached", self.quota_message("ContainerGroups", 0, 0, 1))
            if rule.fault == "pull_failure" and op == "create":
                raise ArmFailure(400, "InaccessibleImage", self.inaccessible(image or "", name))
            if rule.fault == "error":
                status = int(rule.params.get("status", 500))
                code = rule.params.get("code", "InternalServerError")
                raise ArmFailure(status, code, str(rule.params.get("message", "An internal error occurred.")))

    def quota_message(self, quota: str, limit: float, usage: float, requested: float) -> str:
        return (
            f"Resource type '{PROVIDER}/containerGroups' container group quota '{quota}' exceeded in region "
            f"'{self.location}'. Limit: '{limit:g}', Usage: '{usage:g}' Requested: '{requested:g}'."
        )

    @staticmethod
    def inaccessible(image: str, name: str) -> str:
        return (
            f"The image '{image}' in container group '{name}' is not accessible. "
            "Please check the image and registry credential."
        )

    def set_limits(self, limits: Limits) -> None:
        """Enforce `limits` from now on; the rate windows start empty."""
        self.limits = limits
        self.writes = limits.limiter()

    def cores_in_use(self, others: list[Group]) -> tuple[float, float]:
        """(Standard, Spot) cores held by `others`; a stopped group holds none."""
        running = [g for g in others if g.state not in {"Stopped"}]
        spot = sum(g.cores for g in running if priority_of(g.body) is Priority.SPOT)
        return sum(g.cores for g in running) - spot, spot

    def in_region(self, subscription: str, location: str) -> list[Group]:
        """The groups that count against one subscription's quotas in one region (ACI's quotas are per both)."""
        scope = (subscription.lower(), normalize_location(location))
        return [g for g in self.groups.values() if (g.subscription.lower(), group_location(g, self.location)) == scope]

    def check_quota(self, group: Group, replacing: Group | None) -> None:
        in_region = self.in_region(group.subscription, group_location(group, self.location))
        others = [g for g in in_region if g is not replacing]
        if len(others) + 1 > self.max_groups:
            raise ArmFailure(
                400,
                "ContainerGroupQuotaReached",
                self.quota_message("ContainerGroups", self.max_groups, len(others), 1),
            )
        standard, spot = self.cores_in_use(others)
        exceeded = self.limits.check_cores(priority_of(group.body), group.cores, standard, spot, self.max_cores)
        if exceeded is not None:
            raise ArmFailure(
                400,
                "ContainerGroupQuotaReached",
                self.quota_message(exceeded.quota.value, exceeded.limit, exceeded.usage, exceeded.requested),
            )

    def check_spot_location(self, group: Group) -> None:
        """A Spot create where ACI offers no Spot: refused as the support article on this 409 describes a
        feature the region lacks (the same text as a capacity shortage, so clients cannot tell them apart)."""
        location = str(group.body.get("location", ""))
        if priority_of(group.body) is Priority.SPOT and not self.limits.offers_spot(location):
            raise ArmFailure(409, "ServiceUnavailable", self.unavailable_message(group, location))

    @staticmethod
    def unavailable_message(group: Group, location: str) -> str:
        containers = group.properties.get("containers") or []
        memory = sum(
            float((((c.get("properties") or {}).get("resources") or {}).get("requests") or {}).get("memoryInGB", 0))
            for c in containers
        )
        return (
            f"The requested resource is not available in the location '{location}' at this moment. Please retry "
            f"with a different resource request or in another location. Resource requested: '{group.cores:g}' CPU "
            f"'{memory:g}' GB memory '{group.properties.get('osType', 'Linux')}' OS"
        )

    def admit_write(self, kind: WriteKind, subscription: str, location: str) -> dict[str, str]:
        """ARM's front door: count the write in its rate windows or refuse it with 429 (uncounted). Returns the
        `x-ms-ratelimit-remaining-...` headers ARM adds to an admitted write."""
        verdict = self.writes.admit(kind, subscription, location)
        if isinstance(verdict, Throttled):
            raise ArmFailure(
                429, "ResourceRequestsThrottled", verdict.message, {"Retry-After": str(verdict.retry_after)}
            )
        return remaining_headers(verdict)

    # -- validation ------------------------------------------------------------------------------------------

    def validate(self, name: str, body: Any) -> None:
        if not GROUP_NAME.match(name):
            raise ArmFailure(
                400, "InvalidContainerGroupName",
                f"The container group name '{name}' is invalid. A container group name must contain no more than "
                "63 characters and must match the regex '[a-z0-9]([-a-z0-9]*[a-z0-9])?' (e.g. 'my-name').",
            )  # fmt: skip
        if not isinstance(body, dict) or not isinstance(body.get("properties"), dict):
            raise ArmFailure(400, "InvalidRequestContent", "The request content was invalid: 'properties' is required.")
        if not body.get("location"):
            raise ArmFailure(400, "LocationRequired", "The location property is required for this definition.")
        props = body["properties"]
        containers = props.get("containers")
        if not isinstance(containers, list) or not containers:
            raise ArmFailure(400, "MissingRequiredProperty", "At least one container is required.")
        if props.get("osType") not in {"Linux", "Windows"}:
            raise ArmFailure(400, "InvalidOsType", "The 'osType' must be 'Linux' or 'Windows'.")
        policy = props.get("restartPolicy")
        if policy is not None and policy not in RESTART_POLICIES:
            raise ArmFailure(400, "InvalidRestartPolicy", f"The restart policy '{policy}' is not supported.")
        seen: set[str] = set()
        for container in [*containers, *(props.get("initContainers") or [])]:
            cname = str(container.get("name", ""))
            if not CONTAINER_NAME.match(cname) or cname in seen:
                raise ArmFailure(400, "InvalidContainerName", f"The container name '{cname}' is invalid or repeated.")
            seen.add(cname)
            cprops = container.get("properties") or {}
            image = cprops.get("image")
            if not image:
                raise ArmFailure(400, "MissingRequiredProperty", f"The container '{cname}' has no image.")
            if not cprops.get("command") and self.catalog_command(str(image)) is None:
                raise ArmFailure(400, "InaccessibleImage", self.inaccessible(str(image), name))
        for container in containers:
            requests = ((container.get("properties") or {}).get("resources") or {}).get("requests") or {}
            cpu, memory = requests.get("cpu"), requests.get("memoryInGB")
            if not isinstance(cpu, int | float) or not 0 < cpu <= MAX_CPU:
                raise ArmFailure(
                    400,
                    "InvalidContainerResourceRequests",
                    f"The cpu request of container '{container['name']}' must be >0 and <= {MAX_CPU:g}.",
                )
            if not isinstance(memory, int | float) or not 0 < memory <= MAX_MEMORY_GB:
                raise ArmFailure(
                    400, "InvalidContainerResourceRequests",
                    f"The memory request of container '{container['name']}' must be >0 and <= {MAX_MEMORY_GB:g} GB.",
                )  # fmt: skip

    # -- rendering -------------------------------------------------------------------------------------------

    def resource_id(self, group: Group) -> str:
        return (
            f"/subscriptions/{group.subscription}/resourceGroups/{group.resource_group}/providers/{PROVIDER}"
            f"/containerGroups/{group.name}"
        )

    def render(self, group: Group) -> dict[str, Any]:
        body = copy.deepcopy(group.body)
        props = body.setdefault("properties", {})
        for kind, runs in (("containers", group.containers), ("initContainers", group.init_containers)):
            for container in props.get(kind) or []:
                cprops = container.setdefault("properties", {})
                for variable in cprops.get("environmentVariables") or []:
                    variable.pop("secureValue", None)  # write-only, as in ARM
                run = runs.get(container["name"])
                if run is not None:
                    view: dict[str, Any] = {"restartCount": run.restart_count, "currentState": run.current,
                                            "events": run.events}  # fmt: skip
                    if run.previous:
                        view["previousState"] = run.previous
                    cprops["instanceView"] = view
        for credential in props.get("imageRegistryCredentials") or []:
            credential.pop("password", None)
        props.setdefault("initContainers", [])
        props["sku"] = props.get("sku") or "Standard"
        props["provisioningState"] = group.provisioning_state
        props["instanceView"] = {"events": group.group_events, "state": group.state}
        body.update({"id": self.resource_id(group), "name": group.name, "type": f"{PROVIDER}/containerGroups"})
        return body

    def operation_url(self, request: web.Request, group: Group, kind: str) -> str:
        token = base64.urlsafe_b64encode(f"{kind}|{group.key}".encode()).decode().rstrip("=")
        return (
            f"{request.scheme}://{request.host}/subscriptions/{group.subscription}/providers/{PROVIDER}"
            f"/locations/{self.location}/operations/{token}?api-version=2018-06-01"
        )

    # -- operations ------------------------------------------------------------------------------------------

    def find(self, sub: str, rg: str, name: str) -> Group:
        group = self.groups.get(f"{sub}/{rg}/{name}".lower())
        if group is None:
            raise ArmFailure(
                404, "ResourceNotFound",
                f"The Resource '{PROVIDER}/containerGroups/{name}' under resource group '{rg}' was not found. "
                "For more details please go to https://aka.ms/ARMResourceNotFoundFix",
            )  # fmt: skip
        return group

    async def put(self, request: web.Request, sub: str, rg: str, name: str, body: Any) -> web.Response:
        # ARM counts every PUT it forwards (creates and updates alike: it cannot tell them apart), before the
        # resource provider validates anything.
        location = body.get("location") if isinstance(body, dict) else None
        rate_headers = self.admit_write(WriteKind.CREATE, sub, str(location or self.location))
        images = [
            c.get("properties", {}).get("image") for c in (body or {}).get("properties", {}).get("containers", [])
        ]
        self.check_api_faults("create", name, images[0] if images else None)
        self.validate(name, body)
        key = f"{sub}/{rg}/{name}".lower()
        existing = self.groups.get(key)
        if existing is not None and existing.provisioning_state in TRANSITIONING:
            raise ArmFailure(
                409,
                "ContainerGroupTransitioning",
                f"The container group '{name}' is still transitioning, please retry later.",
            )
        group = Group(key=key, subscription=sub, resource_group=rg, name=name, body=body)
        self.check_spot_location(group)
        self.check_quota(group, existing)
        group.faults = [
            {"fault": rule.fault, **rule.params}
            for rule in self.faults.draw("create", name, images[0] if images else None, LIFE_FAULTS)
        ]
        if existing is not None:
            await self.runtimes[key].stop_processes(reason_event="Killing")
            group.containers = existing.containers
        self.groups[key] = group
        runtime = GroupRuntime(group, self)
        self.runtimes[key] = runtime
        self.save(group)
        runtime.start()
        headers = {"Azure-AsyncOperation": self.operation_url(request, group, "create"), **rate_headers}
        return arm_json(self.render(group), 200 if existing else 201, headers)

    async def delete_group(self, group: Group, out_of_band: bool = False) -> None:
        runtime = self.runtimes.pop(group.key, None)
        self.groups.pop(group.key, None)
        self.saved.pop(group.key, None)
        if runtime is not None:
            await runtime.stop_processes()
        with contextlib.suppress(FileNotFoundError):
            (self.data_dir / "groups" / f"{self._file(group.key)}.json").unlink()
        remove_tree(self.data_dir / "logs" / self._file(group.key))
        remove_tree(self.work_dir(group))
        del out_of_band

    async def stop(self, group: Group) -> None:
        runtime = self.runtimes[group.key]
        await runtime.stop_processes(reason_event="Killing")
        for run in group.containers.values():
            if run.current.get("state") != "Terminated":
                run.terminated(137, "Stopped")
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

    def operation_status(self, token: str) -> dict[str, Any]:
        try:
            kind, key = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode().split("|", 1)
        except (ValueError, UnicodeDecodeError):
            raise ArmFailure(404, "OperationNotFound", "The operation was not found.") from None
        group = self.groups.get(key)
        if group is None:
            if kind == "delete":
                return {"status": "Succeeded"}
            return {"status": "Failed", "error": {"message": "The container group was deleted."}}
        base: dict[str, Any] = {"id": self.resource_id(group), "startTime": now_iso(),
                                "properties": {"events": group.group_events}}  # fmt: skip
        if group.provisioning_state == "Failed":
            return {**base, "status": "Failed", "error": {"message": group.failure or "Provisioning failed."}}
        if group.provisioning_state in TRANSITIONING or (kind == "start" and group.state == "Pending"):
            return {**base, "status": group.provisioning_state if kind == "create" else "InProgress"}
        return {**base, "status": "Succeeded"}

    def page(self, request: web.Request, groups: list[Group]) -> dict[str, Any]:
        groups = sorted(groups, key=lambda g: g.key)
        skip = int(request.query.get("$skiptoken", "0") or 0)
        items = groups[skip : skip + self.page_size]
        body: dict[str, Any] = {"value": [self.render(g) for g in items]}
        if skip + self.page_size < len(groups):
            query = dict(request.query)
            query["$skiptoken"] = str(skip + self.page_size)
            body["nextLink"] = str(request.url.with_query(query))
        return body

    def usages(self, subscription: str, location: str) -> dict[str, Any]:
        in_region = self.in_region(subscription, location)
        standard, spot = self.cores_in_use(in_region)
        standard_limit = self.max_cores if self.limits.standard_cores is None else self.limits.standard_cores
        spot_limit = standard_limit if self.limits.spot_cores is None else self.limits.spot_cores
        rows = [("ContainerGroups", "Container Groups", len(in_region), self.max_groups),
                ("StandardCores", "Standard Cores", standard, standard_limit),
                ("StandardSpotCores", "Standard Spot Cores", spot, spot_limit)]  # fmt: skip
        return {
            "value": [
                {"unit": "Count", "currentValue": current, "limit": limit,
                 "name": {"value": name, "localizedValue": label}}
                for name, label, current, limit in rows
            ]
        }  # fmt: skip


def group_location(group: Group, default: str) -> str:
    """A group's region, normalized (`West Europe` and `westeurope` are one region to ARM)."""
    return normalize_location(str(group.body.get("location") or default))


def priority_of(body: dict[str, Any]) -> Priority:
    """A group's priority; ARM treats an absent one as Regular."""
    return Priority.SPOT if (body.get("properties") or {}).get("priority") == Priority.SPOT.value else Priority.REGULAR


def remaining_headers(admitted: Admitted) -> dict[str, str]:
    """What ARM tells a caller about each window after an admitted write (seen on real ACI PUTs:
    `x-ms-ratelimit-remaining-subscription-resource-requests-pt5m: 99` and `...-pt1h: 299`)."""
    prefix = "x-ms-ratelimit-remaining-subscription-resource-requests-"
    return {prefix + window.iso_duration(): str(left) for window, left in admitted.remaining}


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# The one route open without the token: the launcher polls it for readiness; it names no group (only a count).
OPEN_PATHS = frozenset({"/_emulator/health"})


def require_token(token: str) -> Middleware:
    """Middleware: every route but `OPEN_PATHS` (the fault admin routes too: a `vanish` rule deletes groups)
    answers 401 with ARM's envelope unless the request carries `Authorization: Bearer <token>`."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path not in OPEN_PATHS:
            try:
                auth.check(request.headers.get("Authorization"), token)
            except auth.Unauthenticated as refused:
                # ARM's gateway answers with a bearer challenge and says the refusal is its own, not the RP's.
                headers = {"WWW-Authenticate": 'Bearer error="invalid_token"', "x-ms-failure-cause": "gateway"}
                error = {"code": refused.code, "message": refused.message}
                return arm_json({"error": error}, refused.status, headers)
        return await handler(request)

    return middleware


def build_app(emulator: Emulator, token: str) -> web.Application:
    group_path = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ContainerInstance/containerGroups/{name}"

    def arm(handler: Handler) -> Handler:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(request)
            except ArmFailure as failure:
                error: dict[str, Any] = {"message": failure.message}
                if failure.code:
                    error = {"code": failure.code, **error}
                return arm_json({"error": error}, failure.status, failure.headers)

        return wrapped

    def names(request: web.Request) -> tuple[str, str, str]:
        info = request.match_info
        return info["sub"], info["rg"], info.get("name", "")

    async def health(request: web.Request) -> web.Response:
        return arm_json({"status": "ok", "groups": len(emulator.groups), "bwrap": emulator.use_bwrap})

    async def list_faults(request: web.Request) -> web.Response:
        return arm_json({"rules": [rule.to_dict() for rule in emulator.faults.rules]})

    async def add_fault(request: web.Request) -> web.Response:
        try:
            data = await request.json()
            rules = [emulator.faults.add(item) for item in (data if isinstance(data, list) else [data])]
        except (ValueError, FaultRuleInvalid) as error:
            return arm_json({"error": {"code": "InvalidFault", "message": str(error)}}, 400)
        return arm_json({"rules": [rule.to_dict() for rule in rules]}, 201)

    async def clear_faults(request: web.Request) -> web.Response:
        emulator.faults.clear()
        return web.Response(status=204)

    def limits_view() -> dict[str, Any]:
        return {"limits": emulator.limits.to_dict(), "usage": emulator.writes.usage()}

    async def get_limits(request: web.Request) -> web.Response:
        return arm_json(limits_view())

    async def put_limits(request: web.Request) -> web.Response:
        try:
            emulator.set_limits(Limits.from_dict(await request.json()))
        except (ValueError, LimitsInvalid) as error:
            return arm_json({"error": {"code": "InvalidLimits", "message": str(error)}}, 400)
        return arm_json(limits_view())

    async def clear_limits(request: web.Request) -> web.Response:
        emulator.set_limits(Limits())
        return web.Response(status=204)

    @arm
    async def put_group(request: web.Request) -> web.Response:
        sub, rg, name = names(request)
        try:
            body = await request.json()
        except ValueError:
            raise ArmFailure(400, "InvalidRequestContent", "The request content was not valid JSON.") from None
        return await emulator.put(request, sub, rg, name, body)

    @arm
    async def get_group(request: web.Request) -> web.Response:
        sub, rg, name = names(request)
        emulator.check_api_faults("get", name, None)
        return arm_json(emulator.render(emulator.find(sub, rg, name)))

    @arm
    async def patch_group(request: web.Request) -> web.Response:
        sub, rg, name = names(request)
        group = emulator.find(sub, rg, name)
        body = await request.json()
        if isinstance(body, dict) and isinstance(body.get("tags"), dict):
            group.body["tags"] = body["tags"]
            emulator.save(group)
        return arm_json(emulator.render(group))

    @arm
    async def delete_group(request: web.Request) -> web.Response:
        sub, rg, name = names(request)
        known = emulator.groups.get(f"{sub}/{rg}/{name}".lower())
        # Counted like ARM counts it, at the front door: a delete of a missing group counts too.
        location = str(known.body.get("location") or emulator.location) if known else emulator.location
        rate_headers = emulator.admit_write(WriteKind.DELETE, sub, location)
        emulator.check_api_faults("delete", name, None)
        try:
            group = emulator.find(sub, rg, name)
        except ArmFailure:
            return web.Response(status=204, headers=rate_headers)
        rendered = emulator.render(group)
        await emulator.delete_group(group)
        rendered["properties"]["provisioningState"] = "Succeeded"
        return arm_json(rendered, 200, rate_headers)

    @arm
    async def group_action(request: web.Request) -> web.Response:
        sub, rg, name = names(request)
        action = request.match_info["action"]
        emulator.check_api_faults(action, name, None)
        group = emulator.find(sub, rg, name)
        if group.provisioning_state in TRANSITIONING and action != "stop":
            raise ArmFailure(
                409,
                "ContainerGroupTransitioning",
                f"The container group '{name}' is still transitioning, please retry later.",
            )
        if action == "stop":
            await emulator.stop(group)
            return web.Response(status=204)
        if action == "restart":
            await emulator.restart(group, count_restart=True)
            return web.Response(status=204)
        if group.state == "Running":
            return web.Response(status=204)
        await emulator.restart(group, count_restart=False)
        return web.Response(
            status=202, headers={"Azure-AsyncOperation": emulator.operation_url(request, group, "start")}
        )

    @arm
    async def container_logs(request: web.Request) -> web.Response:
        sub, rg, name = names(request)
        emulator.check_api_faults("logs", name, None)
        group = emulator.find(sub, rg, name)
        container = request.match_info["container"]
        path = emulator.log_dir(group) / f"{container}.log"
        if (container not in group.containers and container not in group.init_containers) or not path.exists():
            raise ArmFailure(
                404, "ContainerLogNotAvailable",
                f"Log of container '{container}' in container group '{name}' is not available yet. Please check "
                "container 'InstanceView' for more information or retry later.",
            )  # fmt: skip
        content = path.read_bytes().decode("utf-8", "replace")
        tail = request.query.get("tail")
        if tail and tail.isdigit():
            content = "".join(content.splitlines(keepends=True)[-int(tail) :]) if int(tail) else ""
        return arm_json({"content": content})

    @arm
    async def unsupported(request: web.Request) -> web.Response:
        raise ArmFailure(
            400,
            "UnsupportedOperation",
            "The emulator does not support exec or attach: containers are local processes.",
        )

    @arm
    async def list_in_group(request: web.Request) -> web.Response:
        sub, rg, _ = names(request)
        emulator.check_api_faults("list", "", None)
        prefix = f"{sub}/{rg}/".lower()
        return arm_json(emulator.page(request, [g for k, g in emulator.groups.items() if k.startswith(prefix)]))

    @arm
    async def list_in_subscription(request: web.Request) -> web.Response:
        sub = request.match_info["sub"].lower()
        emulator.check_api_faults("list", "", None)
        return arm_json(emulator.page(request, [g for k, g in emulator.groups.items() if k.startswith(sub + "/")]))

    @arm
    async def operation(request: web.Request) -> web.Response:
        return arm_json(emulator.operation_status(request.match_info["op"]))

    @arm
    async def usages(request: web.Request) -> web.Response:
        return arm_json(emulator.usages(request.match_info["sub"], request.match_info["loc"]))

    app = web.Application(client_max_size=4 * 1024 * 1024, middlewares=[require_token(token)])
    app.router.add_get("/_emulator/health", health)
    app.router.add_get("/_emulator/faults", list_faults)
    app.router.add_post("/_emulator/faults", add_fault)
    app.router.add_delete("/_emulator/faults", clear_faults)
    app.router.add_get("/_emulator/limits", get_limits)
    app.router.add_put("/_emulator/limits", put_limits)
    app.router.add_delete("/_emulator/limits", clear_limits)
    app.router.add_put(group_path, put_group)
    app.router.add_get(group_path, get_group)
    app.router.add_patch(group_path, patch_group)
    app.router.add_delete(group_path, delete_group)
    app.router.add_post(group_path + "/{action:stop|start|restart}", group_action)
    app.router.add_get(group_path + "/containers/{container}/logs", container_logs)
    app.router.add_post(group_path + "/containers/{container}/{kind:exec|attach}", unsupported)
    app.router.add_get(
        "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ContainerInstance/containerGroups",
        list_in_group,
    )
    app.router.add_get(
        "/subscriptions/{sub}/providers/Microsoft.ContainerInstance/containerGroups", list_in_subscription
    )
    app.router.add_get(
        "/subscriptions/{sub}/providers/Microsoft.ContainerInstance/locations/{loc}/operations/{op}",
        operation,
    )
    app.router.add_get("/subscriptions/{sub}/providers/Microsoft.ContainerInstance/locations/{loc}/usages", usages)

    async def on_startup(app: web.Application) -> None:
        await emulator.load()

    async def on_cleanup(app: web.Application) -> None:
        await emulator.shutdown()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app


async def serve(emulator: Emulator, host: str, port: int, stop: asyncio.Event, token: str) -> None:
    runner = web.AppRunner(build_app(emulator, token), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    print(f"aciemu listening on http://{host}:{port} (bubblewrap: {emulator.use_bwrap})", flush=True)
    if not emulator.use_bwrap:
        print(UNISOLATED_WARNING, file=sys.stderr, flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
