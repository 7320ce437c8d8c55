"""The acibatch agent's sidecar counts in a task's request: decided at submission (the job input records it), asked
for by the lease (so tenant quotas and the region's cores include it), sent to ACI by the create activity exactly as
the lease counted it, and refused at submission with a message naming the agent's share when a group could never run.
A task without the agent keeps the input, lease and group it had before."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from acibatch import durable_names as names
from acibatch.agentshare import MAX_AGENT_TASK_TIMEOUT_SECONDS, AgentShare, oversize_problems, runs_agent
from acibatch.blobstore.sas import ANCHOR_STEP, CLOCK_SKEW, ORCHESTRATION_SLACK, UPLOAD_GRACE, SasWindow
from acibatch.leases import LeaseRequest, Quota
from acibatch.messages.aci import CreateGroupInput
from acibatch.plan import JobInput, TaskInput, task_inputs
from acibatch.settings import StorageSettings
from acibatch.spec import JobSpec, parse_job_spec
from acibatch.tenancy import AcquireStatus, CapacityState, acquire, set_tenant_quota
from activities.aci import group_request
from tests.appsettings import app_settings
from tests.orchestrators.harness import Orchestration
from tests.orchestrators.test_task import CAPACITY, PROGRESS, final
from tests.unit.test_agent_group import wire
from tests.unit.test_settings import VALID

SHARE = AgentShare(0.1, 0.2)
IMAGE = "registry.example.com/team/worker:1"


def spec(**fields: Any) -> JobSpec:
    return parse_job_spec({"jobId": "j1", "image": IMAGE, "command": ["run"], "taskCount": 1, **fields})


def job(parsed: JobSpec, share: AgentShare | None) -> JobInput:
    stored = parsed.to_dict()
    return JobInput(
        tenant="team-a", job_id="j1", spec=stored, sealed_secure_env=None, fingerprint="f",
        submitted_at="2026-01-05T08:59:00.000000Z", poll_seconds=30.0, storage=share is not None,
        agent_cpu=share.cpu if share else 0.0, agent_memory_gb=share.memory_gb if share else 0.0,
    )  # fmt: skip


def first_task(parsed: JobSpec, share: AgentShare | None) -> TaskInput:
    made = job(parsed, share)
    return task_inputs(JobInput.from_dict(made.to_dict()), parsed, 0, 1)[0]


def test_without_storage_the_inputs_have_no_agent_keys_and_the_group_is_the_task() -> None:
    task = first_task(spec(cpu=1, memoryGb=1.5), None)
    assert not {"agent", "agentCpu", "agentMemoryGb"} & set(task.to_dict())
    assert not {"storage", "agentCpu", "agentMemoryGb"} & set(job(spec(), None).to_dict())
    assert (task.group_cpu, task.group_memory_gb) == (1.0, 1.5)


def test_an_agent_task_carries_the_sidecars_request_recorded_at_submission() -> None:
    task = first_task(spec(cpu=1, memoryGb=1.5), SHARE)
    wire = task.to_dict()
    assert (wire["agent"], wire["agentCpu"], wire["agentMemoryGb"]) == (True, 0.1, 0.2)
    assert TaskInput.from_dict(wire) == task
    # Summed in the steps the spec uses: 1.5 + 0.2 is 1.7, never 1.7000000000000002.
    assert (task.group_cpu, task.group_memory_gb) == (1.1, 1.7)


def test_a_task_running_its_images_default_command_has_no_agent_and_asks_nothing_more() -> None:
    parsed = parse_job_spec({"jobId": "j1", "image": IMAGE, "tasks": [{"id": "a"}, {"id": "b", "command": ["x"]}]})
    plain, wrapped = task_inputs(job(parsed, SHARE), parsed, 0, 2)
    assert (plain.agent, plain.agent_cpu, plain.group_cpu) == (False, 0.0, 1.0)
    assert (wrapped.agent, wrapped.agent_cpu, wrapped.group_cpu) == (True, 0.1, 1.1)
    assert runs_agent(parsed, SHARE) and not runs_agent(parsed, AgentShare())


def test_the_lease_asks_for_the_whole_group_and_a_rejection_names_the_agents_share() -> None:
    task = first_task(spec(cpu=1, memoryGb=1.5), SHARE)
    h = Orchestration(names.TASK_ORCHESTRATOR, task.to_dict(), task.instance_id)
    asked = h.run().new[1].input
    assert (asked["cores"], asked["memoryGb"]) == (1.1, 1.7)
    # The capacity entity refuses with its own numbers; the task's error says where the extra 0.1 comes from.
    state, _ = set_tenant_quota(CapacityState.empty(10, 100), "team-a", Quota(10, 1.0, 10.0))
    _, answer = acquire(state, LeaseRequest.from_dict({**asked, "requestedAt": 0.0}))
    assert answer.status is AcquireStatus.REJECTED
    h.entity_answered(PROGRESS, "begin", {"cancelled": False})
    h.entity_answered(CAPACITY, "acquire", answer.to_dict())
    error = final(h.run())["error"]
    assert error.startswith("the task can never be scheduled: a task needs 1.1 cores / 1.7 GB")
    assert error.endswith("(the task's request includes the acibatch agent's 0.1 cores / 0.2 GB)")


def test_a_task_without_the_agent_asks_for_its_own_request_as_before() -> None:
    task = first_task(spec(cpu=1, memoryGb=1.5), None)
    asked = Orchestration(names.TASK_ORCHESTRATOR, task.to_dict(), task.instance_id).run().new[1].input
    assert (asked["cores"], asked["memoryGb"]) == (1.0, 1.5)


def test_the_tenants_quota_holds_fewer_agent_tasks_at_once() -> None:
    state, _ = set_tenant_quota(CapacityState.empty(10, 100), "team-a", Quota(10, 2.0, 8.0))
    granted = []
    for number in range(2):
        request = LeaseRequest(f"l{number}", "team-a", 1.1, 1.7, float(number))
        state, answer = acquire(state, request)
        granted.append(answer.status)
    # Two 1-core tasks fit 2 cores; with the sidecar each group is 1.1 cores, so the second waits.
    assert granted == [AcquireStatus.GRANTED, AcquireStatus.QUEUED]


@pytest.mark.parametrize(
    ("fields", "quota", "path", "says"),
    [
        ({"cpu": 1}, Quota(10, 1.0, 40.0), "cpu",
         "1 + 0.1 = 1.1 cores, but tenant 'team-a' may use at most 1 cores (maxCores); set cpu to at most 0.9, "
         "or ask the admin to raise the tenant's maxCores to 1.1"),
        ({"cpu": 4}, Quota(10, 10.0, 40.0), "cpu",
         "4 + 0.1 = 4.1 cores, but one ACI container group may have at most 4 cores; set cpu to at most 3.9"),
        ({"memoryGb": 16}, Quota(10, 10.0, 40.0), "memoryGb",
         "16 + 0.2 = 16.2 GB, but one ACI container group may have at most 16 GB; set memoryGb to at most 15.8"),
        ({"cpu": 0.1}, Quota(10, 0.1, 40.0), "cpu",
         "but tenant 'team-a' may use at most 0.1 cores (maxCores); ask the admin to raise the tenant's maxCores "
         "to at least 0.2"),
    ],
)  # fmt: skip
def test_a_group_that_could_never_run_is_refused_naming_the_agents_share(
    fields: dict[str, Any], quota: Quota, path: str, says: str
) -> None:
    (problem,) = oversize_problems(spec(**fields), SHARE, quota, "team-a")
    assert problem.path == path
    assert "also runs the acibatch agent" in problem.message and says in problem.message


def test_nothing_is_refused_without_the_agent_or_when_the_group_fits() -> None:
    assert oversize_problems(spec(cpu=4, memoryGb=16), AgentShare(), Quota(1, 0.5, 0.5), "team-a") == []
    assert oversize_problems(spec(cpu=3.9, memoryGb=15.8), SHARE, Quota(10, 4.0, 16.0), "team-a") == []
    assert oversize_problems(spec(cpu=1), SHARE, None, "team-a") == []  # no quota known: the group size only
    assert AgentShare.of(StorageSettings(agent_cpu=0.5)) == AgentShare()  # storage off: no agent runs


def test_an_agent_task_whose_timeout_outlasts_its_sas_is_refused_naming_the_bound() -> None:
    over = MAX_AGENT_TASK_TIMEOUT_SECONDS + 1
    (problem,) = oversize_problems(spec(taskTimeoutSeconds=over), SHARE, None, "team-a")
    assert problem.path == "taskTimeoutSeconds"
    assert f"at most {MAX_AGENT_TASK_TIMEOUT_SECONDS} s (6 d 20 h 55 min)" in problem.message
    assert f"set taskTimeoutSeconds to at most {MAX_AGENT_TASK_TIMEOUT_SECONDS}" in problem.message
    assert oversize_problems(spec(taskTimeoutSeconds=MAX_AGENT_TASK_TIMEOUT_SECONDS), SHARE, None, "team-a") == []
    # Without the agent no SAS is minted: the spec's own 7-day limit stands.
    assert oversize_problems(spec(taskTimeoutSeconds=7 * 24 * 3600), AgentShare(), None, "team-a") == []


@pytest.mark.parametrize("into_step", [timedelta(0), ANCHOR_STEP - timedelta(seconds=1)])
def test_at_the_bound_the_attempts_sas_still_covers_the_timeout_and_the_upload_grace(into_step: timedelta) -> None:
    created = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    now = created + 3 * ANCHOR_STEP + into_step  # the create ran late in a step: the window's anchor lies behind
    needed = now + timedelta(seconds=MAX_AGENT_TASK_TIMEOUT_SECONDS) + UPLOAD_GRACE + CLOCK_SKEW + ORCHESTRATION_SLACK
    window = SasWindow.for_attempt(MAX_AGENT_TASK_TIMEOUT_SECONDS, int(created.timestamp()), now)
    assert window.expiry >= needed
    if into_step:  # the worst case: a minute more would outlast the SAS, so the bound is not needlessly tight
        longer = SasWindow.for_attempt(MAX_AGENT_TASK_TIMEOUT_SECONDS + 60, int(created.timestamp()), now)
        assert longer.expiry < needed + timedelta(seconds=60)


@pytest.fixture
def storage_on(azurite: Any) -> Iterator[None]:
    """App settings with storage on Azurite and a sidecar request other than the one the task recorded."""
    with app_settings({
        **VALID,
        "BATCH_STORAGE_CONNECTION_STRING": azurite.connection_string,
        "BATCH_STORAGE_CONTAINER_PREFIX": f"q{uuid.uuid4().hex[:8]}-",
        "BATCH_AGENT_IMAGE": "registry.example.com/acibatch/agent:1",
        "BATCH_AGENT_CPU": "0.5",
        "BATCH_AGENT_MEMORY_GB": "0.6",
    }):  # fmt: skip
        yield


def sidecar_requests(task: TaskInput) -> dict[str, Any]:
    create = CreateGroupInput(task=task, attempt=1, name="g1", owner=task.instance_id, priority="Regular",
                              created_at=1700000000)  # fmt: skip
    body = wire(group_request(create))  # the PUT body the ACI SDK would send
    task_container, sidecar = body["properties"]["containers"]
    assert task_container["properties"]["resources"] == {"requests": {"memoryInGB": 1.5, "cpu": 1.0}}
    return dict(sidecar["properties"]["resources"]["requests"])


@pytest.mark.azurite
def test_the_group_asks_aci_for_what_the_lease_counted_not_todays_settings(storage_on: None) -> None:
    task = first_task(spec(cpu=1, memoryGb=1.5), SHARE)
    assert sidecar_requests(task) == {"cpu": 0.1, "memoryInGB": 0.2}  # recorded at submission
    # An input written before the request was recorded asks for what the settings say.
    legacy = dataclasses.replace(task, agent_cpu=0.0, agent_memory_gb=0.0)
    assert sidecar_requests(legacy) == {"cpu": 0.5, "memoryInGB": 0.6}
