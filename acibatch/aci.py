"""ACI adapter: build container group models and run the few ARM operations a task attempt needs.

The activities in `activities/` call `AciGateway` and pass plain dicts across the Durable boundary, so
`GroupState` and `ArmError` convert to and from JSON. With `ACI_ENDPOINT` set the client talks plain http
to that URL (the local emulator, over `acibatch.loopback`) with the emulator's token; otherwise it uses
`DefaultAzureCredential` (the Function App's managed identity in Azure) and requests against real ARM.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any, TypeVar

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.core.pipeline.transport import HttpTransport, RequestsTransport
from azure.mgmt.containerinstance import ContainerInstanceManagementClient
from azure.mgmt.containerinstance.models import (
    Container,
    ContainerGroup,
    ContainerGroupIdentity,
    EnvironmentVariable,
    ImageRegistryCredential,
    ResourceRequests,
    ResourceRequirements,
    UserAssignedIdentities,
)

from acibatch.agentgroup import AgentPart, agent_pieces
from acibatch.armclient import LocalAuthPolicy, StaticToken
from acibatch.loopback import LoopbackTransport

APP_TAG = "acibatch"
CONTAINER_NAME = "task"
# How the platform interrupting a run shows in a GET. ACI documents no event name for a Spot eviction (the event
# list is free text), so events are never read for it; these are the signals it does document:
# - Exit codes 7147/7148: the platform (Service Fabric, which ACI runs on) stopped the container itself, with Ctrl+C
#   or by force: maintenance, load balancing, a node move. SupportArticles-docs azure-container-instances
#   "container-group-restart-killing-event-interruption"; azure-docs service-fabric-diagnostics-code-package-errors.
MAINTENANCE_EXIT_CODES = frozenset({7147, 7148})
# - Provisioning states of a group whose node went down and that ACI is moving to another node (azure-docs
#   container-instances/container-state.md, "Provisioning"). Not always shown, so never the only signal relied on.
MOVING_PROVISIONING_STATES = frozenset({"Unhealthy", "Repairing"})
# - A restart under restart policy Never, which never restarts by policy: ACI restarts evicted Spot groups by
#   itself (container-instances-spot-containers-overview.md, "Eviction policies") and moved or maintained groups
#   too. `restartCount` is the number of restarts (REST spec, ContainerPropertiesInstanceView).
RUN_ONCE_POLICY = "Never"
# - Waiting once provisioning has Succeeded, under restart policy Never. Succeeded means the containers got into
#   the running state, and Waiting means init containers still running or a crash-loop back-off (container-state.md),
#   neither of which fits; an evicted Spot group's containers wait for a new node (SupportArticles-docs
#   "spot-containers-remain-waiting-state"). Read together, not stated by ACI: medium confidence.
SUCCEEDED = "Succeeded"
# Provisioning states of a group that is alive or on its way (the REST spec's ContainerGroupProvisioningState
# values): a re-run of its own create leaves such a group alone. Any other state (Failed, Canceled, Deleting, ...)
# means it will not run the attempt: the create is PUT again, as the orchestrator asked.
LIVE_PROVISIONING_STATES = frozenset({"Accepted", "Pending", "Creating", "Updating", SUCCEEDED}) | (
    MOVING_PROVISIONING_STATES
)
WAITING = "Waiting"
TERMINATED = "Terminated"
# A restart that followed the app's own exit code is the app's doing ("Never" may still restart a failed
# container), not an interruption. Killed by a signal from outside (docker's 128 + SIGKILL / SIGTERM; the spec
# says ACI exit codes are docker run's) or no exit code at all (a node that vanished records none) is not the app's.
OUTSIDE_KILL_EXIT_CODES = frozenset({137, 143})
EVENTS_KEPT = 8
TAG_VALUE_MAX = 256
_Result = TypeVar("_Result")


@dataclass(frozen=True)
class RegistryCredentials:
    server: str
    username: str | None = None
    password: str | None = None
    identity: str | None = None  # user-assigned managed identity resource id with AcrPull on the registry


@dataclass(frozen=True)
class GroupRequest:
    name: str
    tenant: str
    job_id: str
    task_id: str
    attempt: int
    owner: str
    image: str
    command: tuple[str, ...]
    env: Mapping[str, str]
    secure_env: Mapping[str, str]
    cpu: float
    memory_gb: float
    priority: str
    created_at: int
    location: str
    # Set for a task that runs with the acibatch agent (files, whole logs): adds its init container, sidecar and
    # volumes (`acibatch.agentgroup`). Not in repr: the manifest holds SAS URLs.
    agent: AgentPart | None = field(default=None, repr=False)


class ArmError(Exception):
    """An ARM failure as data: real ACI failure bodies may carry a message and no code. `retry_after` is the
    response's Retry-After in seconds, when ARM throttled the request."""

    def __init__(self, status: int | None, code: str | None, message: str, retry_after: float | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.retry_after = status, code, message, retry_after

    def __reduce__(self) -> tuple[type[ArmError], tuple[int | None, str | None, str, float | None]]:
        # Exception pickling would call __init__ with the formatted text only.
        return ArmError, (self.status, self.code, self.message, self.retry_after)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"status": self.status, "code": self.code, "message": self.message}
        if self.retry_after is not None:
            data["retryAfter"] = self.retry_after
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ArmError:
        retry_after = data.get("retryAfter")
        return cls(data.get("status"), data.get("code"), str(data.get("message", "")),
                   None if retry_after is None else float(retry_after))  # fmt: skip


# Creates and deletes are not retried on an error status by the ARM client: it would sleep ARM's whole
# Retry-After (up to an hour for ACI's hourly window) inside the activity, three times, past the Functions
# timeout. The 429 comes back at once instead, and the task waits it out durably (`acibatch.armrate`).
# Connection errors are still retried by the client.
WRITES_RETRY_STATUS = 0


def retry_after_seconds(exc: BaseException) -> float | None:
    """The Retry-After (seconds) of the HTTP response behind `exc`, if it carried one ARM's way (a number)."""
    headers = getattr(getattr(exc, "response", None), "headers", None)
    value = headers.get("Retry-After") if headers is not None else None
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: ARM sends seconds, and without one the policy's back-off applies
    return seconds if seconds is not None and 0 <= seconds <= 24 * 3600 else None


def arm_error_from(exc: BaseException) -> ArmError:
    if isinstance(exc, ArmError):
        return exc
    if isinstance(exc, HttpResponseError):
        error = getattr(exc, "error", None)
        code = getattr(error, "code", None) or None
        message = getattr(error, "message", None) or exc.message or str(exc)
        return ArmError(exc.status_code, code, str(message), retry_after_seconds(exc))
    return ArmError(None, None, f"{type(exc).__name__}: {exc}")


def _iso_or_none(moment: Any) -> str | None:
    return moment.isoformat() if moment is not None else None


def _tag(value: str) -> str:
    return value[:TAG_VALUE_MAX]


def _on_registry(image: str, registry: RegistryCredentials) -> bool:
    return image.split("/", 1)[0].lower() == registry.server.lower()


def build_container_group(request: GroupRequest, registry: RegistryCredentials | None) -> ContainerGroup:
    env = [EnvironmentVariable(name=name, value=value) for name, value in request.env.items()]
    env += [EnvironmentVariable(name=name, secure_value=value) for name, value in request.secure_env.items()]
    agent = None
    if request.agent is not None:
        agent = agent_pieces(request.agent, request.command, request.env, request.secure_env)
        env += agent.task_env
    container = Container(
        name=CONTAINER_NAME,
        image=request.image,
        command=(agent.task_command if agent else list(request.command)) or None,
        environment_variables=env,
        resources=ResourceRequirements(requests=ResourceRequests(cpu=request.cpu, memory_in_gb=request.memory_gb)),
        volume_mounts=agent.task_mounts if agent else None,
    )
    images = [request.image] + ([request.agent.image] if request.agent else [])
    credentials, identity = None, None
    if registry is not None and any(_on_registry(image, registry) for image in images):
        if registry.identity:
            credentials = [ImageRegistryCredential(server=registry.server, identity=registry.identity)]
            identity = ContainerGroupIdentity(
                type="UserAssigned", user_assigned_identities={registry.identity: UserAssignedIdentities()}
            )
        elif registry.username:
            credentials = [
                ImageRegistryCredential(server=registry.server, username=registry.username, password=registry.password)
            ]
    return ContainerGroup(
        location=request.location,
        tags={
            "app": APP_TAG,
            "tenant": _tag(request.tenant),
            "job": _tag(request.job_id),
            "task": _tag(request.task_id),
            "attempt": str(request.attempt),
            "owner": _tag(request.owner),
            "created": str(request.created_at),
        },
        containers=[container, agent.sidecar] if agent else [container],
        init_containers=agent.init_containers if agent else None,
        volumes=agent.volumes if agent else None,
        os_type="Linux",
        restart_policy="Never",
        image_registry_credentials=credentials,
        identity=identity,
        priority="Spot" if request.priority == "Spot" else None,
    )


@dataclass(frozen=True)
class GroupState:
    exists: bool
    provisioning_state: str | None = None
    state: str | None = None
    container_state: str | None = None
    exit_code: int | None = None
    restart_count: int = 0
    detail_status: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    failure: str | None = None
    events: tuple[str, ...] = ()
    previous_state: str | None = None  # the run before the current one, when ACI restarted the container
    previous_exit_code: int | None = None
    restart_policy: str | None = None
    # What a record written before the fields above existed said (its "evicted" flag; "" for no), so that an
    # orchestration replaying its history decides as it did.
    recorded_interruption: str | None = None
    # An agent group's other containers (the sidecar) have not all ended: the attempt is not over when the task
    # container is, since the sidecar still uploads outputs and writes result.json.
    sidecars_active: bool = False

    @property
    def finished(self) -> bool:
        task_ended = self.container_state == TERMINATED and not self.sidecars_active
        return task_ended or self.state in {"Succeeded", "Failed", "Stopped"}

    def interruption(self, restarts_requested: int = 0) -> str | None:
        """Why the platform, not the task, ended or moved this run (a Spot eviction looks like this), or None.

        Only signals ACI documents count (see the constants above); `restarts_requested` is how many restarts we
        asked for ourselves, which `restartCount` may include.
        """
        if self.recorded_interruption is not None:
            return self.recorded_interruption or None
        for code in (self.exit_code, self.previous_exit_code):
            if code in MAINTENANCE_EXIT_CODES:
                return f"the platform stopped the container (exit {code})"
        if self.provisioning_state in MOVING_PROVISIONING_STATES:
            return f"ACI is moving the container group to another node (provisioningState {self.provisioning_state})"
        # No restartPolicy in the answer: ours, since every group acibatch creates is run-once.
        run_once = self.restart_policy in {RUN_ONCE_POLICY, None}
        restarted = run_once and self.restart_count > restarts_requested
        if restarted and (self.previous_exit_code is None or self.previous_exit_code in OUTSIDE_KILL_EXIT_CODES):
            return f"ACI restarted the container by itself (restartCount {self.restart_count}, restart policy Never)"
        # A restart we asked for may show Waiting for a moment too.
        waiting = self.container_state == WAITING and self.provisioning_state == SUCCEEDED and not self.finished
        if run_once and waiting and restarts_requested == 0:
            return "the container is waiting to start again after it ran (restart policy Never)"
        return None

    @property
    def evicted(self) -> bool:
        """Interrupted by the platform, counting every restart as ACI's own (callers that restarted: `interruption`)."""
        return self.interruption() is not None

    def to_dict(self) -> dict[str, Any]:
        data = {
            "exists": self.exists,
            "provisioningState": self.provisioning_state,
            "state": self.state,
            "containerState": self.container_state,
            "exitCode": self.exit_code,
            "restartCount": self.restart_count,
            "detailStatus": self.detail_status,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
            "failure": self.failure,
            "events": list(self.events),
            "previousState": self.previous_state,
            "previousExitCode": self.previous_exit_code,
            "restartPolicy": self.restart_policy,
        }
        if self.recorded_interruption is not None:
            data["interruption"] = self.recorded_interruption
        if self.sidecars_active:  # written only when set: one-container groups keep the answer they had
            data["sidecarsActive"] = True
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GroupState:
        recorded = data.get("interruption")
        if recorded is None and "evicted" in data:
            recorded = "the container group was evicted or interrupted" if data["evicted"] else ""
        return cls(
            exists=bool(data["exists"]),
            provisioning_state=data.get("provisioningState"),
            state=data.get("state"),
            container_state=data.get("containerState"),
            exit_code=data.get("exitCode"),
            restart_count=int(data.get("restartCount") or 0),
            detail_status=data.get("detailStatus"),
            started_at=data.get("startedAt"),
            finished_at=data.get("finishedAt"),
            failure=data.get("failure"),
            events=tuple(data.get("events") or ()),
            previous_state=data.get("previousState"),
            previous_exit_code=data.get("previousExitCode"),
            restart_policy=data.get("restartPolicy"),
            recorded_interruption=recorded,
            sidecars_active=bool(data.get("sidecarsActive", False)),
        )

    @classmethod
    def from_group(cls, group: ContainerGroup) -> GroupState:
        view = group.instance_view
        containers = list(group.containers or [])
        # The task container by name (an agent group also holds the sidecar); the first one as before otherwise.
        named = [item for item in containers if item.name == CONTAINER_NAME]
        container = named[0] if named else (containers[0] if containers else None)
        container_view = container.instance_view if container is not None else None
        # The SDK types read-only fields as always None, hence Any for the runs read from a GET body.
        current: Any = container_view.current_state if container_view is not None else None
        previous: Any = getattr(container_view, "previous_state", None)
        events: list[Any] = list(view.events or []) if view is not None else []
        events += list(container_view.events or []) if container_view is not None else []
        names = [str(event.name) for event in events if event.name]
        warnings = [event.message for event in events if event.type == "Warning" and event.message]
        failure: str | None = str(warnings[-1]) if warnings else None
        provisioning: str | None = getattr(group, "provisioning_state", None)
        if failure is None and provisioning == "Failed":
            failure = "provisioning failed"
        return cls(
            exists=True,
            provisioning_state=provisioning,
            state=view.state if view is not None else None,
            container_state=getattr(current, "state", None),
            exit_code=getattr(current, "exit_code", None),
            restart_count=int(container_view.restart_count or 0) if container_view is not None else 0,
            detail_status=getattr(current, "detail_status", None),
            started_at=_iso_or_none(getattr(current, "start_time", None)),
            finished_at=_iso_or_none(getattr(current, "finish_time", None)),
            failure=failure,
            events=tuple(names[-EVENTS_KEPT:]),
            previous_state=getattr(previous, "state", None),
            previous_exit_code=getattr(previous, "exit_code", None),
            restart_policy=str(group.restart_policy) if group.restart_policy is not None else None,
            sidecars_active=any(_active(item) for item in containers if item is not container),
        )


def _active(container: Container) -> bool:
    """Not yet ended (a container with no instance view has not started: the init containers still run)."""
    view: Any = container.instance_view
    current: Any = view.current_state if view is not None else None
    return getattr(current, "state", None) != TERMINATED


@dataclass(frozen=True)
class GroupSummary:
    name: str
    tags: dict[str, str] = field(default_factory=dict)


class AciGateway:
    """The ARM operations of one resource group; sync (activities run in the Functions thread pool)."""

    def __init__(self, client: ContainerInstanceManagementClient, resource_group: str) -> None:
        self.client = client
        self.resource_group = resource_group

    def create(self, request: GroupRequest, registry: RegistryCredentials | None) -> None:
        """PUT by name without waiting for provisioning: a retry of the same attempt is the same PUT.

        ACI restarts the containers of a running group on any PUT of its name, even one that changes nothing
        (azure-docs container-instances-update.md). An agent group is looked up first: when this very request
        (same owner, attempt and creation time) already made it, a re-run of the activity (Durable runs
        activities at least once) leaves it running instead of restarting the user's command mid-run.
        """
        if request.agent is not None and self._made_by(request):
            return
        group = build_container_group(request, registry)
        try:
            self.client.container_groups.begin_create_or_update(
                self.resource_group, request.name, group, polling=False, retry_status=WRITES_RETRY_STATUS
            )
        except Exception as exc:
            raise arm_error_from(exc) from exc

    def _made_by(self, request: GroupRequest) -> bool:
        """Whether the group exists as `request` made it and may be left as it is (a group whose provisioning
        failed, was canceled or ended otherwise is created again, as the orchestrator asked)."""
        found, group = _unless_missing(lambda: self.client.container_groups.get(self.resource_group, request.name))
        if not found or group is None:
            return False
        tags = group.tags or {}
        made = (tags.get("owner"), tags.get("attempt"), tags.get("created")) == (
            _tag(request.owner), str(request.attempt), str(request.created_at),
        )  # fmt: skip
        provisioning: str | None = getattr(group, "provisioning_state", None)
        return made and provisioning in LIVE_PROVISIONING_STATES

    def get_state(self, name: str) -> GroupState:
        found, group = _unless_missing(lambda: self.client.container_groups.get(self.resource_group, name))
        return GroupState.from_group(group) if found and group is not None else GroupState(exists=False)

    def stop(self, name: str) -> bool:
        found, _ = _unless_missing(lambda: self.client.container_groups.stop(self.resource_group, name))
        return found

    def restart(self, name: str) -> bool:
        found, _ = _unless_missing(
            lambda: self.client.container_groups.begin_restart(self.resource_group, name).result()
        )
        return found

    def delete(self, name: str, known_to_exist: bool = False) -> bool:
        """Delete and wait until the group is gone, so its quota is free; False when it did not exist."""
        # ARM answers a delete of a missing group with 204, indistinguishable from success: look first,
        # unless the caller has just seen the group.
        if not known_to_exist and not self.get_state(name).exists:
            return False
        # `wait`, not `result`: nothing reads the deleted group. Failures raise from `wait`.
        found, _ = _unless_missing(
            lambda: self.client.container_groups.begin_delete(
                self.resource_group, name, retry_status=WRITES_RETRY_STATUS
            ).wait()
        )
        return found

    def logs(self, name: str, tail: int | None = None) -> str | None:
        found, logs = _unless_missing(
            lambda: self.client.containers.list_logs(self.resource_group, name, CONTAINER_NAME, tail=tail)
        )
        return (logs.content or "") if found and logs is not None else None

    def list_app_groups(self) -> list[GroupSummary]:
        """Groups tagged app=acibatch in the resource group, across all result pages."""
        try:
            groups = list(self.client.container_groups.list_by_resource_group(self.resource_group))
        except Exception as exc:
            raise arm_error_from(exc) from exc
        return [
            GroupSummary(str(group.name), dict(group.tags or {}))
            for group in groups
            if (group.tags or {}).get("app") == APP_TAG
        ]


def _unless_missing(operation: Callable[[], _Result]) -> tuple[bool, _Result | None]:
    """Run one ARM call: (False, None) when the resource is missing, ArmError for any other failure."""
    try:
        return True, operation()
    except ResourceNotFoundError:
        return False, None
    except Exception as exc:
        raise arm_error_from(exc) from exc


def make_client(
    subscription_id: str,
    endpoint: str | None,
    polling_interval: float = 2.0,
    transport: HttpTransport | None = None,  # type: ignore[type-arg]
    *,
    token: str | None = None,
) -> ContainerInstanceManagementClient:
    """The ARM client: for `endpoint` (the local emulator) with its bearer `token` (required there), else for
    Azure's ARM with `DefaultAzureCredential`. A plain-http endpoint gets `LoopbackTransport` unless `transport`
    is given."""
    if endpoint:
        if not token:
            raise ValueError(f"the ARM endpoint {endpoint} needs its bearer token (ACI_ENDPOINT_TOKEN)")
        if transport is None:
            # An emulator over https gets requests, without the proxy and .netrc lookups it repeats on every call.
            local = endpoint.startswith("http://")
            transport = LoopbackTransport() if local else RequestsTransport(use_env_settings=False)
        return ContainerInstanceManagementClient(
            credential=StaticToken(token),
            subscription_id=subscription_id,
            base_url=endpoint,
            authentication_policy=LocalAuthPolicy(token),
            transport=transport,
            polling_interval=polling_interval,
            retry_total=4,
            retry_backoff_factor=0.2,
        )
    from azure.identity import DefaultAzureCredential  # noqa: PLC0415  (only in Azure: the local stack never needs it)

    return ContainerInstanceManagementClient(
        credential=DefaultAzureCredential(),
        subscription_id=subscription_id,
        polling_interval=polling_interval,
        retry_total=4,
    )


@cache
def shared_gateway(
    subscription_id: str, endpoint: str | None, resource_group: str, token: str | None = None
) -> AciGateway:
    """The process's gateway for one configuration, built once and shared by every caller.

    A client holds its credential (which caches its token: in Azure a new `DefaultAzureCredential` asks managed
    identity for a token again) and its kept connections, so building one per call repeats both.
    """
    return AciGateway(make_client(subscription_id, endpoint, token=token), resource_group)
