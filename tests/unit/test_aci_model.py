"""Container group models built for ACI, ARM error mapping, and polled states turned into observations."""

import json
import pickle
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ServiceRequestError
from azure.core.rest import HttpRequest
from azure.mgmt.containerinstance.models import ContainerGroup
from hypothesis import given
from hypothesis import strategies as st

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
from acibatch.policy import AttemptState, Next, ObservationKind, decide
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
    # Every field set (a throttled answer's Retry-After too), so a field the round trip drops shows.
    throttled = ArmError(429, "TooManyRequests", "slow down", retry_after=30.0)
    back = ArmError.from_dict(throttled.to_dict())
    assert (back.status, back.code, back.message, back.retry_after) == (429, "TooManyRequests", "slow down", 30.0)


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
    maintained = GroupState.from_group(group_with({"state": "Terminated", "exitCode": 7148}, group_state="Running"))
    assert maintained.evicted  # the platform stopped it by force; the exit check still comes first
    assert observation_from_state(maintained).kind is ObservationKind.EXITED  # type: ignore[union-attr]
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
    stuck = GroupState.from_group(
        group_with({"state": "Waiting"}, [pull], provisioning="Creating", group_state="Pending")
    )
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
    waiting = GroupState.from_group(
        group_with({"state": "Waiting", "detailStatus": "Pulling"}, provisioning="Creating", group_state="Pending")
    )
    assert waiting.container_state == "Waiting" and not waiting.finished and waiting.exit_code is None
    assert not waiting.evicted  # not started yet
    running = GroupState.from_group(group_with({"state": "Running"}, [{"name": "Started", "type": "Normal"}]))
    assert not running.finished and running.events == ("Started",)


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
    local: Any = make_client("sub", "http://127.0.0.1:7073", polling_interval=0.1, token="t")
    assert local._client._base_url == "http://127.0.0.1:7073" and local._config.polling_interval == 0.1
    assert local._config.retry_policy.total_retries == 4 and local._config.retry_policy.backoff_factor == 0.2
    with pytest.raises(ValueError, match="needs its bearer token"):  # aciemu would answer every call 401
        make_client("sub", "http://127.0.0.1:7073")


def test_one_gateway_and_client_serve_every_caller_of_a_configuration() -> None:
    # The logs route and the activities share it: a client per call would ask Azure's managed identity for a
    # token per call.
    first = shared_gateway("sub", "http://127.0.0.1:7073", "rg", "t")
    assert shared_gateway("sub", "http://127.0.0.1:7073", "rg", "t") is first
    other = shared_gateway("sub", "http://127.0.0.1:7074", "rg", "t")
    assert other is not first and other.client is not first.client


def spot_get(
    view: dict[str, Any],
    provisioning: str = "Succeeded",
    group_state: str = "Running",
    policy: str = "Never",
    events: list[dict[str, Any]] | None = None,
) -> ContainerGroup:
    """A GET body shaped like real ACI's for one of our Spot groups (read-only fields need deserializing)."""
    stamp = "2026-01-04T03:18:52Z"
    body = {
        "id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroups/t-j-0-a1",
        "name": "t-j-0-a1", "type": "Microsoft.ContainerInstance/containerGroups", "location": "westeurope",
        "tags": {"app": APP_TAG, "attempt": "1"},
        "properties": {
            "sku": "Standard", "provisioningState": provisioning, "restartPolicy": policy, "osType": "Linux",
            "priority": "Spot",
            "containers": [{"name": "task", "properties": {
                "image": "myacr.azurecr.io/app:1", "command": ["python3", "run.py"],
                "environmentVariables": [{"name": "MODE", "value": "x"}, {"name": "BATCH_CALLBACK_TOKEN"}],
                "resources": {"requests": {"cpu": 1.5, "memoryInGB": 2.0}},
                "instanceView": {"events": [
                    {"count": 1, "firstTimestamp": stamp, "lastTimestamp": stamp, "name": "Pulled",
                     "message": "Successfully pulled image", "type": "Normal"},
                    {"count": 1, "firstTimestamp": stamp, "lastTimestamp": stamp, "name": "Started",
                     "message": "Started container task", "type": "Normal"}], **view}}}],
            "instanceView": {"state": group_state, "events": events or []},
        },
    }  # fmt: skip
    group: ContainerGroup = ContainerGroup.deserialize(body)
    return group


RUNNING = {"state": "Running", "startTime": "2026-01-04T03:25:00Z", "detailStatus": ""}


def test_a_spot_group_restarted_by_aci_is_an_interruption() -> None:
    # Restart policy Never never restarts by policy: a restart ACI made by itself is how a Spot eviction shows.
    moved = GroupState.from_group(spot_get({"restartCount": 1, "currentState": RUNNING}))
    assert (moved.restart_policy, moved.restart_count, moved.previous_state) == ("Never", 1, None)
    assert moved.evicted and "restartCount 1" in (moved.interruption() or "")
    observed = observation_from_state(moved.to_dict())
    assert observed is not None and observed.kind is ObservationKind.EVICTED
    assert decide(observed, AttemptState(1, 1, priority="Spot")).next_priority == "Regular"
    # The same restart asked for by the attempt itself (a restart in place) is not the platform's.
    assert observation_from_state(moved, restarts_requested=1) is None
    # The lost run recorded as killed from outside, or stopped by the platform, reads the same.
    for code in (137, 143, 7147, 7148):
        previous = {"state": "Terminated", "exitCode": code, "finishTime": "2026-01-04T03:20:00Z"}
        view = {"restartCount": 1, "currentState": RUNNING, "previousState": previous}
        killed = GroupState.from_group(spot_get(view))
        assert killed.previous_exit_code == code and killed.evicted
        # A platform stop shows even in a run the attempt restarted itself; a kill from outside then does not.
        assert (killed.interruption(restarts_requested=1) is not None) is (code in {7147, 7148})
    waiting_again = GroupState.from_group(spot_get({"restartCount": 1, "currentState": {"state": "Waiting"}}))
    assert observation_from_state(waiting_again).kind is ObservationKind.EVICTED  # type: ignore[union-attr]


def test_what_does_not_show_an_interruption() -> None:
    # Waiting to start the first time: provisioning has not Succeeded yet.
    for provisioning in ("Pending", "Creating"):
        view = {"restartCount": 0, "currentState": {"state": "Waiting", "detailStatus": "ContainerCreating"}}
        waiting = GroupState.from_group(spot_get(view, provisioning=provisioning, group_state="Pending"))
        assert not waiting.evicted and observation_from_state(waiting) is None
    # An event name is free text in the REST spec and ACI names none for an eviction: names are never read.
    named = [{"count": 1, "name": "SpotEvicted", "message": "evicted", "type": "Normal"}]
    guessed = GroupState.from_group(spot_get({"restartCount": 0, "currentState": RUNNING}, events=named))
    assert not guessed.evicted and observation_from_state(guessed) is None
    # A restart after the app's own exit code is the app's doing.
    app_exit = {"state": "Terminated", "exitCode": 1, "finishTime": "2026-01-04T03:20:00Z", "detailStatus": "Error"}
    rerun = GroupState.from_group(spot_get({"restartCount": 1, "currentState": RUNNING, "previousState": app_exit}))
    assert not rerun.evicted
    # Under restart policies that restart by themselves a restart means nothing.
    for policy in ("Always", "OnFailure"):
        assert not GroupState.from_group(spot_get({"restartCount": 3, "currentState": RUNNING}, policy=policy)).evicted
    # A plain kill of a Regular container is an exit, not an interruption; on Spot the policy takes it for one.
    killed = {"state": "Terminated", "exitCode": 137, "finishTime": "2026-01-04T03:20:00Z", "detailStatus": "Killed"}
    plain = GroupState.from_group(spot_get({"restartCount": 0, "currentState": killed}, group_state="Failed"))
    assert not plain.evicted
    exited = observation_from_state(plain)
    assert exited is not None and (exited.kind, exited.exit_code) == (ObservationKind.EXITED, 137)
    assert decide(exited, AttemptState(1, 2)).next is Next.NEW_ATTEMPT
    assert decide(exited, AttemptState(1, 2)).next_priority == "Regular"


def test_a_container_waiting_again_after_it_ran_is_an_interruption() -> None:
    # Provisioning Succeeded means the containers got running; under restart policy Never a container waiting
    # after that waits for a new node, which is what an evicted Spot group's containers do.
    view = {"restartCount": 0, "currentState": {"state": "Waiting"}}
    moving = GroupState.from_group(spot_get(view, group_state="Pending"))
    observed = observation_from_state(moving)
    assert observed is not None and observed.kind is ObservationKind.EVICTED
    assert decide(observed, AttemptState(1, 1, priority="Spot")).next_priority == "Regular"
    # A restart the attempt asked for may show Waiting for a moment, and restart policies that restart by
    # themselves wait in a crash-loop back-off.
    assert observation_from_state(moving, restarts_requested=1) is None
    assert not GroupState.from_group(spot_get(view, policy="OnFailure")).evicted


def test_a_group_being_moved_off_a_lost_node_is_an_interruption() -> None:
    for provisioning in ("Unhealthy", "Repairing"):
        moving = GroupState.from_group(
            spot_get({"restartCount": 0, "currentState": RUNNING}, provisioning=provisioning)
        )
        observed = observation_from_state(moving)
        assert observed is not None and observed.kind is ObservationKind.EVICTED
        assert provisioning in (observed.message or "")


def test_interruption_survives_the_durable_boundary() -> None:
    moved = GroupState.from_group(spot_get({"restartCount": 1, "currentState": RUNNING}))
    assert GroupState.from_dict(moved.to_dict()) == moved
    # Records written before the detection read restartCount keep the verdict they carried when replayed.
    legacy = {"exists": True, "containerState": "Running", "restartCount": 1, "evicted": False}
    assert not GroupState.from_dict(legacy).evicted
    assert GroupState.from_dict({**legacy, "evicted": True}).evicted
    assert GroupState.from_dict(GroupState.from_dict(legacy).to_dict()) == GroupState.from_dict(legacy)


TEXT = st.one_of(st.none(), st.text(max_size=12))
CODES = st.one_of(st.none(), st.integers(-1, 10_000))
GROUP_STATES = st.builds(
    GroupState,
    exists=st.booleans(), provisioning_state=TEXT, state=TEXT, container_state=TEXT, exit_code=CODES,
    restart_count=st.integers(0, 50), detail_status=TEXT, started_at=TEXT, finished_at=TEXT, failure=TEXT,
    events=st.lists(st.text(max_size=8), max_size=3).map(tuple), previous_state=TEXT, previous_exit_code=CODES,
    restart_policy=TEXT, recorded_interruption=TEXT,
)  # fmt: skip


@given(GROUP_STATES)
def test_every_group_state_field_crosses_the_durable_boundary(state: GroupState) -> None:
    """Every field set, none left at its default: a field `to_dict` or `from_dict` forgets shows here."""
    assert GroupState.from_dict(json.loads(json.dumps(state.to_dict()))) == state
