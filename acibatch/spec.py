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
}
TASK_FIELDS = {"id", "env", "command"}


class Priority(StrEnum):
    REGULAR = "Regular"
    SPOT = "Spot"


class Cleanup(StrEnum):
    DELETE = "delete"
    STOP = "stop"


_Choice = TypeVar("_Choice", Priority, Cleanup)


@dataclass(frozen=True)
class TaskSpec:
    id: str
    index: int
    command: tuple[str, ...] | None = None
    env: Mapping[str, str] = field(default_factory=dict)


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

    def to_dict(self) -> dict[str, Any]:
        """Canonical camelCase JSON; tasks always listed explicitly (with their index)."""
        tasks: list[dict[str, Any]] = []
        for task in self.tasks:
            item: dict[str, Any] = {"id": task.id, "index": task.index}
            if task.command is not None:
                item["command"] = list(task.command)
            if task.env:
                item["env"] = dict(sorted(task.env.items()))
            tasks.append(item)
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
        )

    def fingerprint(self) -> str:
        """sha256 of the canonical form: the same request written differently has the same fingerprint."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def task_command(self, task: TaskSpec) -> tuple[str, ...]:
        return task.command if task.command is not None else self.command

    def task_env(self, task: TaskSpec) -> dict[str, str]:
        return {**self.env, **task.env}


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
        tasks.append(TaskSpec(id=task_id or "", index=index, command=command, env=env))
    return tuple(tasks)


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
    )
