"""Container group models built for ACI, ARM error mapping, and polled states turned into observations."""

import pickle
from typing import Any

from azure.core.exceptions import HttpResponseError, ServiceRequestError
from azure.core.rest import HttpRequest
from azure.mgmt.containerinstance.models import ContainerGroup

from acibatch.aci import (
    APP_TAG,
    ArmError,
    GroupRequest,
    GroupState,
    RegistryCredentials,
    arm_error_from,
    build_container_group,
    make_client,
    shared_gateway,
)
from acibatch.observe import observation_from_state
from acibatch.plan import JobInput, chunk_ranges, task_inputs
from acibatch.policy import ObservationKind
from acibatch.spec import parse_job_spec

REQUEST = GroupRequest(
    name="t-j-0-a1-abc", tenant="t", job_id="j", task_id="0", attempt=1, owner="task:t:j:0",
    image="myacr.azurecr.io/app:1", command=("python3", "run.py"), env={"MODE": "x"},
    secure_env={"BATCH_CALLBACK_TOKEN": "tok"}, cpu=1.5, memory_gb=2.0, priority="Spot", created_at=1700000000,
    location="westeurope",
)  # fmt: skip


def test_group_model_carries_tags_env_and_run_once_policy() -> None:
    group = build_container_group(REQUEST, None)
    assert group.restart_policy == "Never" and group.os_type == "Linux" and group.priority == "Spot"
    assert group.tags == {"app": APP_TAG, "tenant": "t", "job": "j", "task": "0", "attempt": "1",
                          "owner": "task:t:j:0", "created": "1700000000"}  # fmt: skip
    container = group.containers[0]
    assert container.command == ["python3", "run.py"]
    env = {variable.name: (variable.value, variable.secure_value) for variable in container.environment_variables or []}
    assert env == {"MODE": ("x", None), "BATCH_CALLBACK_TOKEN": (None, "tok")}
    assert container.resources.requests.cpu == 1.5 and container.resources.requests.memory_in_gb == 2.0
    assert group.image_registry_credentials is None and group.identity is None


def test_registry_credentials_only_for_images_on_that_registry() -> None:
    password = build_container_group(REQUEST, RegistryCredentials("myacr.azurecr.io", "user", "pw"))
    assert password.image_registry_credentials is not None
    assert password.image_registry_credentials[0].username == "user"
    assert password.image_registry_credentials[0].password == "pw" and password.identity is None
    identity = build_container_group(REQUEST, RegistryCredentials("myacr.azurecr.io", identity="/ids/pull"))
    assert identity.image_registry_credentials is not None and identity.identity is not None
    assert identity.image_registry_credentials[0].identity == "/ids/pull"
    assert identity.image_registry_credentials[0].password is None
    assert identity.identity.type == "UserAssigned"
    assert list(identity.identity.user_assigned_identities or {}) == ["/ids/pull"]
    anonymous = build_container_group(REQUEST, RegistryCredentials("myacr.azurecr.io"))
    assert anonymous.image_registry_credentials is None and anonymous.identity is None
    other = build_container_group(REQUEST, RegistryCredentials("elsewhere.io", "user", "pw"))
    assert other.image_registry_credentials is None
    regular = build_container_group(GroupRequest(**{**REQUEST.__dict__, "priority": "Regular", "command": ()}), None)
    assert regular.priority is None and regular.containers[0].command is None


def http_error(status: int, body: bytes) -> HttpResponseError:
    from azure.core.pipeline.transport import HttpResponse

    class Response(HttpResponse):
        def body(self) -> bytes:
            return body

    response = Response(HttpRequest("GET", "http://x"), None)  # type: ignore[arg-type]
    response.status_code = status
    response.headers = {"content-type": "application/json"}
    response.content_type = "application/json"
    from azure.mgmt.core.exceptions import ARMErrorFormat

    return HttpResponseError(response=response, error_format=ARMErrorFormat)


def test_arm_errors_keep_status_code_and_message() -> None:
    error = arm_error_from(http_error(400, b'{"error": {"code": "InaccessibleImage", "message": "no image"}}'))
    assert (error.status, error.code, error.message) == (400, "InaccessibleImage", "no image")
    message_only = arm_error_from(http_error(409, b'{"error": {"message": "not available in the location"}}'))
    assert message_only.code is None and "not available" in message_only.message
    transport = arm_error_from(ServiceRequestError("connection refused"))
    assert transport.status is None and "connection refused" in transport.message
    assert ArmError.from_dict(error.to_dict()).to_dict() == error.to_dict()


def group_with(
    state: dict[str, Any] | None,
    events: list[dict[str, str]] | None = None,
    provisioning: str = "Succeeded",
    group_state: str = "Running",
) -> ContainerGroup:
    """A group as ARM returns it on GET (read-only fields can only be set by deserializing)."""
    view: dict[str, Any] = {"restartCount": 0, "events": []}
    if state is not None:
        view["currentState"] = state
    body = {
        "name": "g", "location": "westeurope",
        "properties": {
            "provisioningState": provisioning, "osType": "Linux",
            "containers": [{"name": "task", "properties": {
                "image": "x", "resources": {"requests": {"cpu": 1, "memoryInGB": 1}}, "instanceView": view}}],
            "instanceView": {"state": group_state, "events": events or []},
        },
    }  # fmt: skip
    group: ContainerGroup = ContainerGroup.deserialize(body)
    return group


def test_polled_states_become_observations() -> None:
    terminated = {
        "state": "Terminated",
        "exitCode": 3,
        "finishTime": "2026-01-01T00:00:00Z",
        "detailStatus": "Error",
    }
    exited = GroupState.from_group(group_with(terminated, group_state="Failed"))
    assert exited.finished_at is not None and exited.finished_at.startswith("2026-01-01")
    observation = observation_from_state(exited.to_dict())
    assert observation is not None and observation.kind is ObservationKind.EXITED and observation.exit_code == 3
    running = GroupState.from_group(group_with({"state": "Running"}))
    assert observation_from_state(running) is None
    evicted = GroupState.from_group(
        group_with({"state": "Waiting"}, [{"name": "SpotEvicted", "type": "Warning", "message": "evicted"}])
    )
    assert evicted.evicted
    assert observation_from_state(evicted).kind is ObservationKind.EVICTED  # type: ignore[union-attr]
    capacity = {
        "name": "InsufficientCapacity.",
        "type": "Warning",
        "message": "not available in the location",
    }
    failed = GroupState.from_group(group_with(None, [capacity], provisioning="Failed", group_state="Failed"))
    observed = observation_from_state(failed)
    assert observed is not None and observed.kind is ObservationKind.CREATE_FAILED
    assert observed.arm_message == "not available in the location"
    pull = {"name": "Failed", "type": "Warning", "message": "Failed to pull image"}
    stuck = GroupState.from_group(group_with({"state": "Waiting"}, [pull], group_state="Pending"))
    assert observation_from_state(stuck).kind is ObservationKind.NOT_STARTED  # type: ignore[union-attr]
    assert observation_from_state(GroupState(exists=False)).kind is ObservationKind.LOST  # type: ignore[union-attr]


def test_plan_chunks_and_task_inputs() -> None:
    assert chunk_ranges(250, 100) == [(0, 100), (100, 100), (200, 50)]
    assert chunk_ranges(0) == []
    spec = parse_job_spec(
        {"image": "python:3", "command": ["x"], "tasks": [{"id": "a"}, {"id": "b", "env": {"E": "1"}}]}
    )
    job = JobInput("t", "j", spec.to_dict(), None, "fp", "now", 2.0)
    assert JobInput.from_dict(job.to_dict()) == job
    second = task_inputs(job, spec, 1, 1)[0]
    assert (second.task_id, second.index, second.env, second.instance_id) == (
        "b",
        1,
        {"E": "1"},
        "task:t:j:b",
    )
    assert type(second).from_dict(second.to_dict()) == second


def test_not_found_and_transient_errors_keep_their_codes() -> None:
    missing = arm_error_from(http_error(404, b'{"error": {"code": "ResourceNotFound", "message": "gone"}}'))
    assert (missing.status, missing.code, missing.message) == (404, "ResourceNotFound", "gone")
    busy = arm_error_from(http_error(409, b'{"error": {"code": "ServiceUnavailable", "message": "try later"}}'))
    assert (busy.status, busy.code) == (409, "ServiceUnavailable")
    assert arm_error_from(busy) is busy
    copied = pickle.loads(pickle.dumps(busy))
    assert (copied.status, copied.code, copied.message) == (409, "ServiceUnavailable", "try later")


def test_group_state_parsing_of_get_bodies() -> None:
    done = {"state": "Terminated", "exitCode": 0, "detailStatus": "Completed", "startTime": "2026-01-01T00:00:00Z"}
    succeeded = GroupState.from_group(group_with(done, group_state="Succeeded"))
    assert (succeeded.container_state, succeeded.exit_code, succeeded.detail_status) == ("Terminated", 0, "Completed")
    assert succeeded.finished and not succeeded.evicted and succeeded.failure is None
    assert succeeded.started_at is not None and succeeded.started_at.startswith("2026-01-01")
    waiting = GroupState.from_group(group_with({"state": "Waiting", "detailStatus": "Pulling"}, group_state="Pending"))
    assert waiting.container_state == "Waiting" and not waiting.finished and waiting.exit_code is None
    running = GroupState.from_group(group_with({"state": "Running"}, [{"name": "Started", "type": "Normal"}]))
    assert not running.finished and running.events == ("Started",)
    assert GroupState.from_dict(succeeded.to_dict()) == succeeded
    assert GroupState.from_dict(GroupState(exists=False).to_dict()) == GroupState(exists=False)


def test_platform_maintenance_exit_is_not_an_app_exit() -> None:
    group = group_with({"state": "Running"})
    view: Any = group.containers[0].instance_view
    body = group.serialize(keep_readonly=True)
    body["properties"]["containers"][0]["properties"]["instanceView"] = {
        **view.serialize(keep_readonly=True),
        "restartCount": 1,
        "previousState": {"state": "Terminated", "exitCode": 7147, "detailStatus": "Killed"},
    }
    rebooted = ContainerGroup.deserialize(body)
    state = GroupState.from_group(rebooted)
    assert state.evicted and state.restart_count == 1 and state.container_state == "Running"
    app_failure = GroupState.from_group(group_with({"state": "Terminated", "exitCode": 3}, group_state="Failed"))
    assert not app_failure.evicted and app_failure.exit_code == 3


def test_failed_provisioning_without_events_still_has_a_failure() -> None:
    failed = GroupState.from_group(group_with(None, provisioning="Failed", group_state="Failed"))
    assert failed.failure == "provisioning failed" and failed.finished and failed.container_state is None


def test_tag_values_are_cut_to_the_arm_limit() -> None:
    long_owner = GroupRequest(**{**REQUEST.__dict__, "owner": "o" * 300})
    tags = build_container_group(long_owner, None).tags or {}
    assert tags["owner"] == "o" * 256


def test_client_targets_real_arm_or_the_local_endpoint_with_bounded_retries() -> None:
    # Private config attributes: the SDK offers no public view of how a client was built.
    azure: Any = make_client("sub", None)
    assert azure._client._base_url == "https://management.azure.com"
    assert type(azure._config.credential).__name__ == "DefaultAzureCredential"
    assert azure._config.retry_policy.total_retries == 4
    local: Any = make_client("sub", "http://127.0.0.1:7073", polling_interval=0.1)
    assert local._client._base_url == "http://127.0.0.1:7073" and local._config.polling_interval == 0.1
    assert local._config.retry_policy.total_retries == 4 and local._config.retry_policy.backoff_factor == 0.2


def test_one_gateway_and_client_serve_every_caller_of_a_configuration() -> None:
    # The logs route and the activities share it: a client per call would ask Azure's managed identity for a
    # token per call.
    first = shared_gateway("sub", "http://127.0.0.1:7073", "rg")
    assert shared_gateway("sub", "http://127.0.0.1:7073", "rg") is first
    other = shared_gateway("sub", "http://127.0.0.1:7074", "rg")
    assert other is not first and other.client is not first.client
