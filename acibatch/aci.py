"""ACI adapter: build container group models and run the few ARM operations a task attempt needs.

The activities in `activities/` call `AciGateway` and pass plain dicts across the Durable boundary, so
`GroupState` and `ArmError` convert to and from JSON. With `ACI_ENDPOINT` set the client talks plain http
to that URL (the local emulator, over `acibatch.loopback`) with a static token; otherwise it uses
`DefaultAzureCredential` (the Function App's managed identity in Azure) and requests against real ARM.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any, TypeVar

from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.core.pipeline import PipelineRequest
from azure.core.pipeline.policies import SansIOHTTPPolicy
from azure.core.pipeline.transport import HttpTransport, RequestsTransport
from azure.mgmt.containerinstance import ContainerInstanceManagementClient
from azure.mgmt.containerinstance._serialization import Deserializer
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
from azure.mgmt.containerinstance.operations import ContainerGroupsOperations

from acibatch.loopback import LoopbackTransport

APP_TAG = "acibatch"
CONTAINER_NAME = "task"
EVICTION_EVENTS = frozenset({"SpotEvicted", "Evicted", "Preempted"})
# Exit codes ACI reports when the platform (maintenance, host move) killed the container: not the app's exit.
MAINTENANCE_EXIT_CODES = frozenset({7147, 7148})
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


class ArmError(Exception):
    """An ARM failure as data: real ACI failure bodies may carry a message and no code."""

    def __init__(self, status: int | None, code: str | None, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message

    def __reduce__(self) -> tuple[type[ArmError], tuple[int | None, str | None, str]]:
        # Exception pickling would call __init__ with the formatted text only.
        return ArmError, (self.status, self.code, self.message)

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "code": self.code, "message": self.message}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ArmError:
        return cls(data.get("status"), data.get("code"), str(data.get("message", "")))


def arm_error_from(exc: BaseException) -> ArmError:
    if isinstance(exc, ArmError):
        return exc
    if isinstance(exc, HttpResponseError):
        error = getattr(exc, "error", None)
        code = getattr(error, "code", None) or None
        message = getattr(error, "message", None) or exc.message or str(exc)
        return ArmError(exc.status_code, code, str(message))
    return ArmError(None, None, f"{type(exc).__name__}: {exc}")


def _iso_or_none(moment: Any) -> str | None:
    return moment.isoformat() if moment is not None else None


def _tag(value: str) -> str:
    return value[:TAG_VALUE_MAX]


def build_container_group(request: GroupRequest, registry: RegistryCredentials | None) -> ContainerGroup:
    env = [EnvironmentVariable(name=name, value=value) for name, value in request.env.items()]
    env += [EnvironmentVariable(name=name, secure_value=value) for name, value in request.secure_env.items()]
    container = Container(
        name=CONTAINER_NAME,
        image=request.image,
        command=list(request.command) or None,
        environment_variables=env,
        resources=ResourceRequirements(requests=ResourceRequests(cpu=request.cpu, memory_in_gb=request.memory_gb)),
    )
    credentials, identity = None, None
    if registry is not None and request.image.split("/", 1)[0].lower() == registry.server.lower():
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
        containers=[container],
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
    evicted: bool = False  # Spot eviction event, or a platform-maintenance exit code in this or the previous run
    failure: str | None = None
    events: tuple[str, ...] = ()

    @property
    def finished(self) -> bool:
        return self.container_state == "Terminated" or self.state in {"Succeeded", "Failed", "Stopped"}

    def to_dict(self) -> dict[str, Any]:
        return {
            "exists": self.exists,
            "provisioningState": self.provisioning_state,
            "state": self.state,
            "containerState": self.container_state,
            "exitCode": self.exit_code,
            "restartCount": self.restart_count,
            "detailStatus": self.detail_status,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
            "evicted": self.evicted,
            "failure": self.failure,
            "events": list(self.events),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GroupState:
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
            evicted=bool(data.get("evicted", False)),
            failure=data.get("failure"),
            events=tuple(data.get("events") or ()),
        )

    @classmethod
    def from_group(cls, group: ContainerGroup) -> GroupState:
        view = group.instance_view
        container = group.containers[0] if group.containers else None
        container_view = container.instance_view if container is not None else None
        current = container_view.current_state if container_view is not None else None
        events: list[Any] = list(view.events or []) if view is not None else []
        events += list(container_view.events or []) if container_view is not None else []
        names = [str(event.name) for event in events if event.name]
        warnings = [event.message for event in events if event.type == "Warning" and event.message]
        # The SDK types read-only fields as always None, hence Any for the runs read from a GET body.
        runs: list[Any] = [current, getattr(container_view, "previous_state", None)]
        interrupted = any(getattr(run, "exit_code", None) in MAINTENANCE_EXIT_CODES for run in runs)
        evicted = interrupted or any(name in EVICTION_EVENTS for name in names)
        failure: str | None = str(warnings[-1]) if warnings else None
        provisioning: str | None = getattr(group, "provisioning_state", None)
        if failure is None and provisioning == "Failed":
            failure = "provisioning failed"
        exit_code = current.exit_code if current is not None else None
        return cls(
            exists=True,
            provisioning_state=provisioning,
            state=view.state if view is not None else None,
            container_state=current.state if current is not None else None,
            exit_code=exit_code,
            restart_count=int(container_view.restart_count or 0) if container_view is not None else 0,
            detail_status=current.detail_status if current is not None else None,
            started_at=_iso_or_none(getattr(current, "start_time", None)),
            finished_at=_iso_or_none(getattr(current, "finish_time", None)),
            evicted=evicted,
            failure=failure,
            events=tuple(names[-EVENTS_KEPT:]),
        )


@dataclass(frozen=True)
class GroupSummary:
    name: str
    tags: dict[str, str] = field(default_factory=dict)


class AciGateway:
    """The ARM operations of one resource group; sync (activities run in the Functions thread pool)."""

    def __init__(self, client: ContainerInstanceManagementClient, resource_group: str) -> None:
        self.client = client
        self.resource_group = resource_group
        self.unread = _answers_unread(client)

    def create(self, request: GroupRequest, registry: RegistryCredentials | None) -> None:
        """PUT by name without waiting for provisioning: a retry of the same attempt is the same PUT."""
        group = build_container_group(request, registry)
        try:
            self.unread.begin_create_or_update(self.resource_group, request.name, group, polling=False)
        except Exception as exc:
            raise arm_error_from(exc) from exc

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
        # `wait`, not `result`: nothing reads the deleted group (see `_answers_unread`). Failures raise from `wait`.
        found, _ = _unless_missing(lambda: self.unread.begin_delete(self.resource_group, name).wait())
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


class _Unread(Deserializer):
    """Reads no answer into a model: for the create and the delete, whose answers nobody reads."""

    def __call__(self, target_obj: str, response_data: Any, content_type: str | None = None) -> None:
        return None


def _answers_unread(client: ContainerInstanceManagementClient) -> ContainerGroupsOperations:
    """The client's container-group operations, with the groups in their answers left unparsed.

    The SDK turns the answer of a create or a delete into a `ContainerGroup` model before its poller starts,
    whatever the caller wants of it. Side by side against aciemu, leaving it out takes the delete (the deleted
    group, with its events) from 2.1 to 1.0 ms of CPU and the create from 2.1 to 1.7 ms. Errors and the
    long-running-operation polling do not use the deserializer, so both stay as they were.
    """
    operations = client.container_groups
    return ContainerGroupsOperations(  # type: ignore[no-untyped-call]
        operations._client, operations._config, operations._serialize, _Unread()
    )


def _unless_missing(operation: Callable[[], _Result]) -> tuple[bool, _Result | None]:
    """Run one ARM call: (False, None) when the resource is missing, ArmError for any other failure."""
    try:
        return True, operation()
    except ResourceNotFoundError:
        return False, None
    except Exception as exc:
        raise arm_error_from(exc) from exc


class _StaticToken:
    """The client insists on a credential even when the auth policy below replaces its use."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("local", int(time.time()) + 3600)


class _LocalAuthPolicy(SansIOHTTPPolicy):  # type: ignore[type-arg]
    # The stock bearer policy refuses plain http; the emulator needs a token-shaped header, nothing more.
    def on_request(self, request: PipelineRequest) -> None:  # type: ignore[type-arg]
        request.http_request.headers["Authorization"] = "Bearer local"


def make_client(
    subscription_id: str,
    endpoint: str | None,
    polling_interval: float = 2.0,
    transport: HttpTransport | None = None,  # type: ignore[type-arg]
) -> ContainerInstanceManagementClient:
    """The ARM client: for `endpoint` (the local emulator) with a static token, else for Azure's ARM with
    `DefaultAzureCredential`. A plain-http endpoint gets `LoopbackTransport` unless `transport` is given."""
    if endpoint:
        if transport is None:
            # An emulator over https gets requests, without the proxy and .netrc lookups it repeats on every call.
            local = endpoint.startswith("http://")
            transport = LoopbackTransport() if local else RequestsTransport(use_env_settings=False)
        return ContainerInstanceManagementClient(
            credential=_StaticToken(),
            subscription_id=subscription_id,
            base_url=endpoint,
            authentication_policy=_LocalAuthPolicy(),
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
def shared_gateway(subscription_id: str, endpoint: str | None, resource_group: str) -> AciGateway:
    """The process's gateway for one configuration, built once and shared by every caller.

    A client holds its credential (which caches its token: in Azure a new `DefaultAzureCredential` asks managed
    identity for a token again) and its kept connections, so building one per call repeats both.
    """
    return AciGateway(make_client(subscription_id, endpoint), resource_group)
