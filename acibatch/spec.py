"""Job spec: validate a job request (a JSON dict) into a normalized, typed `JobSpec`.

Every problem is collected with its field path and what to fix, and all are reported at once
(`JobSpecInvalid.errors`). Limits follow ACI's (see the ACI reference §4.6, §6.1): one container group per
task attempt, at most 4 vCPU and 16 GB on Spot and the common Regular SKU.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from acibatch.dag import JOB_GROUP, DependsOn, Graph, GraphInvalid, TaskNode, build_graph, parse_depends_on
from acibatch.exitrules import ExitConditions, JobAction, parse_exit_conditions
from acibatch.outbound import OutboundPolicy, OutboundRefused, check_url

MAX_TASKS = 10_000
MAX_CPU = 4.0
MAX_MEMORY_GB = 16.0
MIN_MEMORY_GB = 0.1
CPU_STEP = 0.01
MAX_ATTEMPTS = 10
MAX_TIMEOUT_SECONDS = 7 * 24 * 3600
DEFAULT_CPU = 1.0
DEFAULT_MEMORY_GB = 1.5
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_TASK_TIMEOUT_SECONDS = 3600
# Job priority (`jobPriority`, Azure Batch's job `priority` range): within a tenant, higher first. The name
# `priority` already means Regular or Spot here (ACI's word), so the job's scheduling priority has its own.
MIN_JOB_PRIORITY, MAX_JOB_PRIORITY = -1000, 1000
MAX_ENV_VARS = 100
MAX_ENV_VALUE_CHARS = 32 * 1024
MAX_COMMAND_ARGS = 200
MAX_ARG_CHARS = 32 * 1024
RESERVED_ENV_PREFIX = "BATCH_"
STRICT_OUTBOUND = OutboundPolicy()  # https to public hosts only

# Test these with fullmatch: with match, '$' also accepts a trailing newline ("job\n"), which would reach
# instance ids and ACI env names. The OpenAPI document exports the patterns, where '$' is the end of input.
ID_RULE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
ENV_NAME_RULE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_]{0,61}[A-Za-z0-9])?$")
# Docker's grammar: [registry host (with a '.', a port, or localhost)/] lowercase path components,
# then :tag and/or @sha256:digest.
IMAGE_RULE = re.compile(
    r"^(?:(?P<registry>(?:localhost|[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)+)(?::[0-9]+)?|[a-zA-Z0-9-]+:[0-9]+)/)?"
    r"(?P<path>[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[a-f0-9]{64}))?$"
)

JOB_FIELDS = {
    "jobId",
    "image",
    "command",
    "cpu",
    "memoryGb",
    "env",
    "secureEnv",
    "tasks",
    "taskCount",
    "maxAttempts",
    "taskTimeoutSeconds",
    "jobTimeoutSeconds",
    "priority",
    "spotFallback",
    "onSuccess",
    "onFailure",
    "notifyUrl",
    "dependsOn",
    "exitConditions",
    "onTaskFailure",
    "jobPriority",
}
TASK_FIELDS = {"id", "env", "command", "group", "dependsOn", "exitConditions"}


class Priority(StrEnum):
    REGULAR = "Regular"
    SPOT = "Spot"


class Cleanup(StrEnum):
    DELETE = "delete"
    STOP = "stop"


class TaskFailureAction(StrEnum):
    """`onTaskFailure` (Azure Batch's job property): what a failed task does to its job."""

    NO_ACTION = "noAction"
    TERMINATE_JOB = "terminateJob"


_Choice = TypeVar("_Choice", Priority, Cleanup, TaskFailureAction)


@dataclass(frozen=True)
class TaskSpec:
    id: str
    index: int
    command: tuple[str, ...] | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    group: str | None = None
    depends_on: DependsOn | None = None
    exit_conditions: ExitConditions | None = None


@dataclass(frozen=True)
class SpecError:
    path: str
    message: str


class JobSpecInvalid(ValueError):
    def __init__(self, errors: list[SpecError]) -> None:
        super().__init__("; ".join(f"{error.path}: {error.message}" for error in errors))
        self.errors = errors


@dataclass(frozen=True)
class JobSpec:
    job_id: str | None
    image: str
    command: tuple[str, ...]
    cpu: float
    memory_gb: float
    env: Mapping[str, str]
    secure_env: Mapping[str, str]
    tasks: tuple[TaskSpec, ...]
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    task_timeout_seconds: int = DEFAULT_TASK_TIMEOUT_SECONDS
    job_timeout_seconds: int | None = None
    priority: Priority = Priority.REGULAR
    spot_fallback: bool = True
    on_success: Cleanup = Cleanup.DELETE
    on_failure: Cleanup = Cleanup.DELETE
    notify_url: str | None = None
    depends_on: DependsOn | None = None  # the default of every task that names none (array sugar)
    exit_conditions: ExitConditions | None = None
    on_task_failure: TaskFailureAction = TaskFailureAction.NO_ACTION
    job_priority: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Canonical camelCase JSON; tasks always listed explicitly (with their index). Fields added later are
        written only when set, so a job submitted before them keeps its fingerprint (idempotent resubmits)."""
        tasks: list[dict[str, Any]] = []
        for task in self.tasks:
            item: dict[str, Any] = {"id": task.id, "index": task.index}
            if task.command is not None:
                item["command"] = list(task.command)
            if task.env:
                item["env"] = dict(sorted(task.env.items()))
            if task.group is not None:
                item["group"] = task.group
            if task.depends_on is not None:
                item["dependsOn"] = task.depends_on.to_dict()
            if task.exit_conditions is not None:
                item["exitConditions"] = task.exit_conditions.to_dict()
            tasks.append(item)
        return {**self._core_dict(tasks), **self._workflow_dict()}

    def _workflow_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.depends_on is not None:
            data["dependsOn"] = self.depends_on.to_dict()
        if self.exit_conditions is not None:
            data["exitConditions"] = self.exit_conditions.to_dict()
        if self.on_task_failure is not TaskFailureAction.NO_ACTION:
            data["onTaskFailure"] = str(self.on_task_failure)
        if self.job_priority:
            data["jobPriority"] = self.job_priority
        return data

    def _core_dict(self, tasks: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "jobId": self.job_id,
            "image": self.image,
            "command": list(self.command),
            "cpu": self.cpu,
            "memoryGb": self.memory_gb,
            "env": dict(sorted(self.env.items())),
            "secureEnv": dict(sorted(self.secure_env.items())),
            "tasks": tasks,
            "maxAttempts": self.max_attempts,
            "taskTimeoutSeconds": self.task_timeout_seconds,
            "jobTimeoutSeconds": self.job_timeout_seconds,
            "priority": str(self.priority),
            "spotFallback": self.spot_fallback,
            "onSuccess": str(self.on_success),
            "onFailure": str(self.on_failure),
            "notifyUrl": self.notify_url,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobSpec:
        """Rebuild from `to_dict()` output (trusted: our own durable state)."""
        return cls(
            job_id=data.get("jobId"),
            image=data["image"],
            command=tuple(data.get("command") or ()),
            cpu=float(data["cpu"]),
            memory_gb=float(data["memoryGb"]),
            env=dict(data.get("env") or {}),
            secure_env=dict(data.get("secureEnv") or {}),
            tasks=tuple(
                TaskSpec(
                    id=task["id"],
                    index=int(task.get("index", position)),
                    command=None if task.get("command") is None else tuple(task["command"]),
                    env=dict(task.get("env") or {}),
                    group=task.get("group"),
                    depends_on=None if task.get("dependsOn") is None else DependsOn.from_dict(task["dependsOn"]),
                    exit_conditions=None
                    if task.get("exitConditions") is None
                    else ExitConditions.from_dict(task["exitConditions"]),
                )
                for position, task in enumerate(data["tasks"])
            ),
            max_attempts=int(data["maxAttempts"]),
            task_timeout_seconds=int(data["taskTimeoutSeconds"]),
            job_timeout_seconds=data.get("jobTimeoutSeconds"),
            priority=Priority(data.get("priority", Priority.REGULAR)),
            spot_fallback=bool(data.get("spotFallback", True)),
            on_success=Cleanup(data.get("onSuccess", Cleanup.DELETE)),
            on_failure=Cleanup(data.get("onFailure", Cleanup.DELETE)),
            notify_url=data.get("notifyUrl"),
            depends_on=None if data.get("dependsOn") is None else DependsOn.from_dict(data["dependsOn"]),
            exit_conditions=None
            if data.get("exitConditions") is None
            else ExitConditions.from_dict(data["exitConditions"]),
            on_task_failure=TaskFailureAction(data.get("onTaskFailure", TaskFailureAction.NO_ACTION)),
            job_priority=int(data.get("jobPriority", 0)),
        )

    @property
    def has_dependencies(self) -> bool:
        return self.depends_on is not None or any(task.depends_on is not None for task in self.tasks)

    @property
    def is_workflow(self) -> bool:
        """Whether the job runs through the dependency-aware orchestrator: it has dependencies, or a task's end
        can stop the job (onTaskFailure: terminateJob, or an exit condition with jobAction: terminate)."""
        if self.has_dependencies or self.on_task_failure is TaskFailureAction.TERMINATE_JOB:
            return True
        rule_sets = [self.exit_conditions, *(task.exit_conditions for task in self.tasks)]
        return any(_terminates(rules) for rules in rule_sets if rules is not None)

    def graph(self) -> Graph:
        """The dependency graph over task indices (checked at submit, so it builds without errors here)."""
        return build_graph(self.task_nodes())

    def task_nodes(self) -> list[TaskNode]:
        return [
            TaskNode(
                id=task.id,
                group=task.group or JOB_GROUP,
                depends_on=task.depends_on if task.depends_on is not None else self.depends_on,
                path=f"tasks[{task.index}].dependsOn" if task.depends_on is not None else "dependsOn",
            )
            for task in self.tasks
        ]

    def task_exit_rules(self, task: TaskSpec) -> tuple[ExitConditions, ...]:
        """The exit rules that apply to `task`, most specific first."""
        return tuple(rules for rules in (task.exit_conditions, self.exit_conditions) if rules is not None)

    def fingerprint(self) -> str:
        """sha256 of the canonical form: the same request written differently has the same fingerprint."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def task_command(self, task: TaskSpec) -> tuple[str, ...]:
        return task.command if task.command is not None else self.command

    def task_env(self, task: TaskSpec) -> dict[str, str]:
        return {**self.env, **task.env}


def _terminates(rules: ExitConditions) -> bool:
    options = [
        *(item for _, item in rules.codes),
        *(item for _, _, item in rules.ranges),
        rules.pre_processing_error,
        rules.file_upload_error,
        rules.default,
    ]
    return any(item is not None and item.job_action is JobAction.TERMINATE for item in options)


class _Collector:
    def __init__(self) -> None:
        self.errors: list[SpecError] = []

    def add(self, path: str, message: str) -> None:
        self.errors.append(SpecError(path, message))


def _number(value: object) -> bool:
    # Any JSON integer is finite; math.isfinite would overflow on one too large for a float (e.g. 1 followed by
    # 400 zeros), so only floats are tested.
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


def _int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def json_type(value: object) -> str:
    """The JSON name of a decoded value's type, for messages such as "must be a string, not an object"."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object"


def _choice(errors: _Collector, data: Mapping[str, Any], name: str, default: _Choice, hint: str = "") -> _Choice:
    """An enum field: one member's value as a JSON string. Any other value, of any JSON type, is an error."""
    members = {member.value: member for member in type(default)}
    value = data.get(name, default.value)
    # Test the type first: an object or a list is unhashable and must not reach the dict lookup.
    if isinstance(value, str) and value in members:
        return members[value]
    allowed = " or ".join(f"'{member}'" for member in members)
    got = f"not '{value[:40]}'" if isinstance(value, str) else f"not {json_type(value)}"
    errors.add(name, f"must be the string {allowed}, {got}{hint}")
    return default


def _env(errors: _Collector, path: str, value: object) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        errors.add(path, 'must be an object of NAME: "value" strings')
        return {}
    if len(value) > MAX_ENV_VARS:
        errors.add(path, f"has {len(value)} variables; at most {MAX_ENV_VARS} are allowed")
    result: dict[str, str] = {}
    for name, item in value.items():
        item_path = f"{path}.{name}"
        if not ENV_NAME_RULE.fullmatch(name):
            errors.add(item_path, "name must be 1-63 letters, digits or '_', not starting or ending with '_'")
        elif name.upper().startswith(RESERVED_ENV_PREFIX):
            errors.add(item_path, f"names starting with {RESERVED_ENV_PREFIX} are reserved for acibatch; rename it")
        if not isinstance(item, str):
            errors.add(item_path, "value must be a string (quote numbers and booleans)")
        elif len(item) > MAX_ENV_VALUE_CHARS or "\x00" in item:
            errors.add(item_path, f"value must be at most {MAX_ENV_VALUE_CHARS} characters and contain no NUL")
        else:
            result[name] = item
    return result


def _command(errors: _Collector, path: str, value: object) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(arg, str) for arg in value):
        errors.add(path, 'must be a list of strings, e.g. ["python3", "main.py"]')
        return None
    if len(value) > MAX_COMMAND_ARGS:
        errors.add(path, f"has {len(value)} arguments; at most {MAX_COMMAND_ARGS} are allowed")
    for position, arg in enumerate(value):
        if position == 0 and not arg:
            errors.add(f"{path}[0]", "the program must not be empty")
        if len(arg) > MAX_ARG_CHARS or "\x00" in arg:
            errors.add(f"{path}[{position}]", f"must be at most {MAX_ARG_CHARS} characters and contain no NUL")
    return tuple(value)


def _ranged_int(errors: _Collector, data: Mapping[str, Any], name: str, low: int, high: int, default: int) -> int:
    value = data.get(name, default)
    if not _int(value) or not low <= value <= high:
        errors.add(name, f"must be an integer from {low} to {high}")
        return default
    return int(value)


def _check_id(errors: _Collector, path: str, value: object) -> str | None:
    if not isinstance(value, str) or not ID_RULE.fullmatch(value):
        errors.add(path, "must be 1-63 characters: letters, digits, '-', '_' or '.', starting with a letter or digit")
        return None
    return value


def _tasks(errors: _Collector, data: Mapping[str, Any]) -> tuple[TaskSpec, ...]:
    has_tasks, has_count = "tasks" in data, "taskCount" in data
    if has_tasks == has_count:
        errors.add("tasks", "give exactly one of 'tasks' (a list of {id, env?, command?}) or 'taskCount'")
        return ()
    if has_count:
        count = data["taskCount"]
        if not _int(count) or not 1 <= count <= MAX_TASKS:
            errors.add("taskCount", f"must be an integer from 1 to {MAX_TASKS}")
            return ()
        return tuple(TaskSpec(id=str(index), index=index) for index in range(count))
    raw = data["tasks"]
    if not isinstance(raw, list) or not raw:
        errors.add("tasks", 'must be a non-empty list of {"id": ...} objects')
        return ()
    if len(raw) > MAX_TASKS:
        errors.add("tasks", f"has {len(raw)} tasks; at most {MAX_TASKS} are allowed per job")
        return ()
    tasks: list[TaskSpec] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(raw):
        path = f"tasks[{index}]"
        if not isinstance(item, dict):
            errors.add(path, 'must be an object like {"id": "t1"}')
            continue
        for unknown in sorted(set(item) - TASK_FIELDS):
            errors.add(f"{path}.{unknown}", f"unknown field; allowed: {', '.join(sorted(TASK_FIELDS))}")
        task_id = _check_id(errors, f"{path}.id", item.get("id"))
        if task_id is not None and task_id in seen:
            errors.add(f"{path}.id", f"duplicates tasks[{seen[task_id]}].id '{task_id}'; task ids must be unique")
        elif task_id is not None:
            seen[task_id] = index
        command = _command(errors, f"{path}.command", item.get("command"))
        env = _env(errors, f"{path}.env", item.get("env"))
        group = None if item.get("group") is None else _check_id(errors, f"{path}.group", item["group"])
        found: list[tuple[str, str]] = []
        depends_on = None
        if item.get("dependsOn") is not None:
            depends_on = parse_depends_on(item["dependsOn"], f"{path}.dependsOn", found)
        exit_conditions = None
        if item.get("exitConditions") is not None:
            exit_conditions = parse_exit_conditions(item["exitConditions"], f"{path}.exitConditions", found)
        for error_path, message in found:
            errors.add(error_path, message)
        tasks.append(
            TaskSpec(
                id=task_id or "",
                index=index,
                command=command,
                env=env,
                group=group,
                depends_on=depends_on,
                exit_conditions=exit_conditions,
            )
        )
    return tuple(tasks)


def _workflow(
    errors: _Collector, data: Mapping[str, Any], tasks: tuple[TaskSpec, ...]
) -> tuple[DependsOn | None, ExitConditions | None, TaskFailureAction, int]:
    """The job's dependency, exit-condition, onTaskFailure and jobPriority fields, and the graph's checks."""
    found: list[tuple[str, str]] = []
    depends_on = None
    if data.get("dependsOn") is not None:
        depends_on = parse_depends_on(data["dependsOn"], "dependsOn", found)
    exit_conditions = None
    if data.get("exitConditions") is not None:
        exit_conditions = parse_exit_conditions(data["exitConditions"], "exitConditions", found)
    for path, message in found:
        errors.add(path, message)
    on_task_failure = _choice(errors, data, "onTaskFailure", TaskFailureAction.NO_ACTION)
    job_priority = _ranged_int(errors, data, "jobPriority", MIN_JOB_PRIORITY, MAX_JOB_PRIORITY, 0)
    # The graph is checked only when every task and dependsOn parsed (a bad id would also read as an unknown one);
    # unrelated errors (an image, a cpu) do not hold it back, so all errors still come at once.
    has_dependencies = depends_on is not None or any(task.depends_on is not None for task in tasks)
    unparsed = any(error.path.startswith(("tasks", "dependsOn")) for error in errors.errors)
    if has_dependencies and not unparsed and tasks:
        draft = JobSpec(None, "", (), 1.0, 1.0, {}, {}, tasks, depends_on=depends_on)
        try:
            draft.graph()
        except GraphInvalid as invalid:
            for path, message in invalid.errors:
                errors.add(path, message)
    return depends_on, exit_conditions, on_task_failure, job_priority


def _url(errors: _Collector, value: object, outbound: OutboundPolicy) -> str | None:
    if value is None:
        return None
    # Everything refusable without DNS is refused here, with what to fix; the send re-checks the resolved addresses.
    try:
        check_url(value, outbound)
    except OutboundRefused as refused:
        errors.add("notifyUrl", str(refused))
        return None
    return str(value)


def parse_job_spec(data: object, *, outbound: OutboundPolicy = STRICT_OUTBOUND) -> JobSpec:
    """Validate `data` and return the normalized spec, or raise `JobSpecInvalid` with every error.

    `outbound` is the app's policy for tenant-aimed URLs (`Settings.outbound`); the default allows https to
    public hosts only.
    """
    if not isinstance(data, dict):
        raise JobSpecInvalid([SpecError("body", "must be a JSON object describing the job")])
    errors = _Collector()
    for unknown in sorted(set(data) - JOB_FIELDS):
        errors.add(unknown, f"unknown field; allowed fields are {', '.join(sorted(JOB_FIELDS))}")

    job_id = None if data.get("jobId") is None else _check_id(errors, "jobId", data["jobId"])
    image = data.get("image")
    if not isinstance(image, str) or len(image) > 512 or not IMAGE_RULE.fullmatch(image):
        errors.add(
            "image",
            "must be an image reference like 'myregistry.azurecr.io/team/app:1.2' "
            "(lowercase repository, optional :tag and/or @sha256:digest)",
        )
        image = ""
    command = _command(errors, "command", data.get("command")) or ()

    cpu = data.get("cpu", DEFAULT_CPU)
    if not _number(cpu) or not CPU_STEP <= cpu <= MAX_CPU or abs(round(cpu / CPU_STEP) * CPU_STEP - cpu) > 1e-9:
        errors.add("cpu", f"must be a number from {CPU_STEP} to {MAX_CPU} in steps of {CPU_STEP}")
        cpu = DEFAULT_CPU
    memory = data.get("memoryGb", DEFAULT_MEMORY_GB)
    if not _number(memory) or not MIN_MEMORY_GB <= memory <= MAX_MEMORY_GB or abs(round(memory, 1) - memory) > 1e-9:
        errors.add("memoryGb", f"must be a number from {MIN_MEMORY_GB} to {MAX_MEMORY_GB} in steps of 0.1")
        memory = DEFAULT_MEMORY_GB

    env = _env(errors, "env", data.get("env"))
    secure_env = _env(errors, "secureEnv", data.get("secureEnv"))
    for name in sorted(set(env) & set(secure_env)):
        errors.add(f"secureEnv.{name}", "is also set in env; set each variable in one place only")
    tasks = _tasks(errors, data)
    if not command and any(task.command is None for task in tasks) and "command" in data:
        errors.add("command", "must not be empty (omit it to run the image's default command)")

    max_attempts = _ranged_int(errors, data, "maxAttempts", 1, MAX_ATTEMPTS, DEFAULT_MAX_ATTEMPTS)
    task_timeout = _ranged_int(errors, data, "taskTimeoutSeconds", 1, MAX_TIMEOUT_SECONDS, DEFAULT_TASK_TIMEOUT_SECONDS)
    job_timeout = None
    if data.get("jobTimeoutSeconds") is not None:
        job_timeout = _ranged_int(errors, data, "jobTimeoutSeconds", 1, MAX_TIMEOUT_SECONDS, MAX_TIMEOUT_SECONDS)

    priority = _choice(errors, data, "priority", Priority.REGULAR)
    spot_fallback = data.get("spotFallback", True)
    if not isinstance(spot_fallback, bool):
        errors.add("spotFallback", "must be true or false")
        spot_fallback = True
    cleanups = {
        name: _choice(errors, data, name, Cleanup.DELETE, " ('stop' keeps the stopped group for inspection)")
        for name in ("onSuccess", "onFailure")
    }
    notify_url = _url(errors, data.get("notifyUrl"), outbound)
    depends_on, exit_conditions, on_task_failure, job_priority = _workflow(errors, data, tasks)

    if errors.errors:
        raise JobSpecInvalid(errors.errors)
    return JobSpec(
        job_id=job_id,
        image=str(image),
        command=command,
        cpu=float(cpu),
        memory_gb=float(memory),
        env=env,
        secure_env=secure_env,
        tasks=tasks,
        max_attempts=max_attempts,
        task_timeout_seconds=task_timeout,
        job_timeout_seconds=job_timeout,
        priority=priority,
        spot_fallback=spot_fallback,
        on_success=cleanups["onSuccess"],
        on_failure=cleanups["onFailure"],
        notify_url=notify_url,
        depends_on=depends_on,
        exit_conditions=exit_conditions,
        on_task_failure=on_task_failure,
        job_priority=job_priority,
    )
