"""The acibatch agent's share of a task's container group, and the limits the whole group must fit.

A task run with the agent has a second container, the sidecar, with its own request (settings BATCH_AGENT_CPU and
BATCH_AGENT_MEMORY_GB). ACI sums the requests of a group's containers for the group's size and for the region's core
quota; the stage-in init container has no request (ACI gives init containers the group's resources while they run,
before the others start). So the group asks for the task's cpu/memory plus the sidecar's, and acibatch counts the
same sum everywhere: the lease (tenant quota and region), usage, and the check at submission here, which refuses a
job whose groups could never be granted instead of letting every task fail in the queue.
"""

from __future__ import annotations

from dataclasses import dataclass

from acibatch.blobstore.sas import ANCHOR_STEP, CLOCK_SKEW, MAX_LIFETIME, ORCHESTRATION_SLACK, UPLOAD_GRACE
from acibatch.capacity_state import EPSILON
from acibatch.jobfields import CPU_STEP, MAX_CPU, MAX_MEMORY_GB
from acibatch.leases import Quota
from acibatch.plan import group_total
from acibatch.policy import UPLOAD_GRACE_SECONDS
from acibatch.settings import StorageSettings
from acibatch.spec import JobSpec, SpecError

MEMORY_STEP = 0.1  # the spec's memoryGb step
# The longest taskTimeoutSeconds an agent task may have: its SAS must last the timeout, the upload grace after it
# and the slack `SasWindow.for_attempt` adds (the SAS window is anchored up to one step before the create, and the
# clocks may differ), yet no SAS lasts longer than MAX_LIFETIME (a user delegation key's limit, 7 days less a margin).
MAX_AGENT_TASK_TIMEOUT_SECONDS = int(
    (MAX_LIFETIME - UPLOAD_GRACE - ANCHOR_STEP - CLOCK_SKEW - ORCHESTRATION_SLACK).total_seconds()
)


@dataclass(frozen=True)
class AgentShare:
    """The sidecar's request, added to each agent task's own; zero when storage is off (no agent runs)."""

    cpu: float = 0.0
    memory_gb: float = 0.0

    @classmethod
    def of(cls, storage: StorageSettings) -> AgentShare:
        return cls(storage.agent_cpu, storage.agent_memory_gb) if storage.enabled else cls()

    @property
    def none(self) -> bool:
        return not (self.cpu or self.memory_gb)


def runs_agent(spec: JobSpec, share: AgentShare) -> bool:
    """Whether some task of `spec` would run with the agent: it wraps a command, so a task that runs its image's
    default command runs without it (`acibatch.plan.task_inputs` decides the same way)."""
    return not share.none and any(spec.task_command(task) for task in spec.tasks)


@dataclass(frozen=True)
class _Resource:
    path: str  # the spec field to lower
    unit: str
    setting: str  # the agent's setting
    quota_field: str  # the tenant quota's field
    step: float
    group_limit: float  # what one container group may have (the spec's own per-task maximum)


CPU = _Resource("cpu", "cores", "BATCH_AGENT_CPU", "maxCores", CPU_STEP, MAX_CPU)
MEMORY = _Resource("memoryGb", "GB", "BATCH_AGENT_MEMORY_GB", "maxMemoryGb", MEMORY_STEP, MAX_MEMORY_GB)


def _problem(
    resource: _Resource, task: float, agent: float, quota_limit: float | None, tenant: str
) -> SpecError | None:
    total = group_total(task, agent)
    limit, by_quota = resource.group_limit, False
    if quota_limit is not None and quota_limit < limit:
        limit, by_quota = quota_limit, True
    if total <= limit + EPSILON:
        return None
    unit = resource.unit
    over = (
        f"tenant '{tenant}' may use at most {limit:g} {unit} ({resource.quota_field})"
        if by_quota
        else f"one ACI container group may have at most {limit:g} {unit}"
    )
    room = round(limit - agent, 2)
    if room >= resource.step - EPSILON:
        fix = f"set {resource.path} to at most {room:g}"
        if by_quota:
            fix += f", or ask the admin to raise the tenant's {resource.quota_field} to {total:g}"
    elif by_quota:
        fix = f"ask the admin to raise the tenant's {resource.quota_field} to at least {total:g}"
    else:
        fix = f"lower {resource.setting}"
    return SpecError(
        resource.path,
        f"each task's container group also runs the acibatch agent, which moves its files and logs and asks for "
        f"{agent:g} {unit} more ({resource.setting}): {task:g} + {agent:g} = {total:g} {unit}, but {over}; {fix}",
    )


def oversize_problems(spec: JobSpec, share: AgentShare, quota: Quota | None, tenant: str) -> list[SpecError]:
    """Why `spec`'s agent tasks could never run: a group over ACI's size, or over the tenant's quota (`quota`;
    None: check the group size only), or a timeout longer than the attempt's SAS can last. Empty when no task runs
    with the agent: a task without it is not checked here, as before the agent (the capacity entity refuses its
    lease when it is over the quota)."""
    if not runs_agent(spec, share):
        return []
    found = [
        _problem(CPU, spec.cpu, share.cpu, None if quota is None else quota.max_cores, tenant),
        _problem(MEMORY, spec.memory_gb, share.memory_gb, None if quota is None else quota.max_memory_gb, tenant),
        _timeout_problem(spec.task_timeout_seconds),
    ]
    return [problem for problem in found if problem is not None]


def _timeout_problem(timeout_seconds: int) -> SpecError | None:
    """An agent task whose timeout outlasts the longest SAS the app can mint: its logs and outputs would be
    refused before the attempt ended."""
    if timeout_seconds <= MAX_AGENT_TASK_TIMEOUT_SECONDS:
        return None
    bound = MAX_AGENT_TASK_TIMEOUT_SECONDS
    return SpecError(
        "taskTimeoutSeconds",
        f"a task run with the acibatch agent may have at most {bound} s ({_duration(bound)}): its blob storage "
        f"access must also cover {UPLOAD_GRACE_SECONDS} s of uploads after the timeout, and the app cannot grant "
        f"access for longer than {_duration(int(MAX_LIFETIME.total_seconds()))}; set taskTimeoutSeconds to at most "
        f"{bound}",
    )


def _duration(seconds: int) -> str:
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    return f"{days} d {hours} h {rest // 60} min"


def rejection_note(cpu: float, memory_gb: float) -> str:
    """What a lease refusal of an agent task adds, so the task's error explains numbers the spec never gave."""
    return f" (the task's request includes the acibatch agent's {cpu:g} cores / {memory_gb:g} GB)"
