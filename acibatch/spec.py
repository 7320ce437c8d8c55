"""Job spec: the `JobSpec` model (the body of `POST /api/jobs`, and the canonical form stored and fingerprinted) and
`parse_job_spec`, which validates a request against it.

Every problem is collected with its field path and what to fix, and all are reported at once
(`JobSpecInvalid.errors`). The limits and each field's rules and messages are in `acibatch.jobfields`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    Strict,
    TypeAdapter,
    WrapValidator,
)
from pydantic import ValidationError as PydanticValidationError
from pydantic.json_schema import SkipJsonSchema

from acibatch.dag import JOB_GROUP, DependsOn, Graph, GraphInvalid, TaskNode, build_graph
from acibatch.exitrules import ExitConditions, JobAction
from acibatch.filespec import OutputFiles, ResourceFiles, lists_files, storage_off_problems
from acibatch.jobfields import (
    CLEANUP_HINT,
    DEFAULT_CPU,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MEMORY_GB,
    DEFAULT_TASK_TIMEOUT_SECONDS,
    ID_RULE,
    MAX_ENV_VALUE_CHARS,
    MAX_TASKS,
    STRICT_OUTBOUND,
    Attempts,
    Cleanup,
    Command,
    Cpu,
    Env,
    Id,
    Image,
    JobPriority,
    MemoryGb,
    Priority,
    TaskFailureAction,
    Timeout,
    Url,
    choice_hint,
    json_type,
    outbound_url,
    secure_env_schema,
)
from acibatch.models.base import (
    NULLABLE,
    ApiModel,
    Checked,
    Hint,
    Problem,
    RequestContext,
    current_request,
    problems_of,
    spec_path,
    validate_request,
    validate_stored,
)
from acibatch.outbound import OutboundPolicy

# Names callers import from here though they live in `acibatch.jobfields`.
__all__ = [
    "ID_RULE",
    "MAX_TASKS",
    "STRICT_OUTBOUND",
    "Cleanup",
    "JobSpec",
    "JobSpecInvalid",
    "Priority",
    "SpecError",
    "TaskFailureAction",
    "TaskSpec",
    "json_type",
    "numbered_tasks",
    "parse_job_spec",
]


@dataclass(frozen=True)
class SpecError:
    path: str
    message: str


class JobSpecInvalid(ValueError):
    def __init__(self, errors: list[SpecError]) -> None:
        super().__init__("; ".join(f"{error.path}: {error.message}" for error in errors))
        self.errors = errors


class TaskSpec(ApiModel):
    """One task of a job: its id, and what it overrides of the job's command and env."""

    NOT_AN_OBJECT = 'must be an object like {"id": "t1"}'
    STORED_ONLY = frozenset({"index"})
    OMIT_WHEN_DEFAULT = frozenset(
        {"command", "env", "group", "dependsOn", "exitConditions", "resourceFiles", "outputFiles"}
    )

    id: Id
    index: SkipJsonSchema[int] = 0  # the task's position in the job, set by the job (not sent by clients)
    command: Command | None = None
    env: Env = Field(default_factory=dict)
    group: Annotated[Id, Field(description="task group for `array`")] | None = None
    depends_on: DependsOn | None = None
    exit_conditions: ExitConditions | None = None
    resource_files: Annotated[ResourceFiles, Field(description="downloaded after the job's resourceFiles")] = ()
    output_files: Annotated[OutputFiles, Field(description="uploaded as well as the job's outputFiles")] = ()


def _tasks_schema(schema: dict[str, Any]) -> None:
    # The model's empty default stands for "given as taskCount"; a client never sends an empty list.
    schema.pop("default", None)
    schema.update(minItems=1, maxItems=MAX_TASKS)


def _duplicate_ids(value: Any) -> list[Problem]:
    if not isinstance(value, list):
        return []
    seen: dict[str, int] = {}
    problems: list[Problem] = []
    for index, item in enumerate(value):
        task_id = item.get("id") if isinstance(item, dict) else None
        if not isinstance(task_id, str) or not ID_RULE.fullmatch(task_id):
            continue
        if task_id in seen:
            message = f"duplicates tasks[{seen[task_id]}].id '{task_id}'; task ids must be unique"
            problems.append(((index, "id"), message))
        else:
            seen[task_id] = index
    return problems


def _numbered(tasks: tuple[TaskSpec, ...]) -> tuple[TaskSpec, ...]:
    """A request's tasks are numbered by position (a client sends no index). Stored JSON keeps its own: a chunk of
    a job holds a slice of its tasks, each with its index in the whole job.

    Set in place: these tasks were built by this validation and nothing else holds them yet, and a copy of each
    would cost a 10,000-task job more than validating it."""
    if current_request() is None:
        return tasks
    for position, task in enumerate(tasks):
        if task.index != position:
            task.__dict__["index"] = position
    return tasks


ABSENT = object()


def _request_sugar(schema: dict[str, Any]) -> None:
    """The request's `taskCount`, and the rules across fields that JSON Schema can state."""
    schema["properties"]["taskCount"] = {"type": "integer", "minimum": 1, "maximum": MAX_TASKS}
    schema["oneOf"] = [{"required": ["tasks"]}, {"required": ["taskCount"]}]
    schema["if"] = {"required": ["tasks"], "properties": {"tasks": {"items": {"required": ["command"]}}}}
    schema["else"] = {"properties": {"command": {"minItems": 1}}}


class JobSpec(ApiModel):
    """Give exactly one of `tasks` or `taskCount`. Rules JSON Schema cannot state: task ids are unique, and a
    variable is set in `env` or in `secureEnv`, not both. A top-level `command` may be empty only when every task
    has its own."""

    model_config = ConfigDict(json_schema_extra=_request_sugar)

    UNKNOWN_FIELD = "unknown field; allowed fields are {allowed}"
    REQUEST_ONLY = frozenset({"taskCount"})
    # Fields added after the first release: written only when set, so a job submitted before them keeps its
    # fingerprint (idempotent resubmits).
    OMIT_WHEN_DEFAULT = frozenset(
        {"dependsOn", "exitConditions", "onTaskFailure", "jobPriority", "resourceFiles", "outputFiles"}
    )
    PROBLEM_ORDER = (
        *("jobId", "image", "command", "cpu", "memoryGb", "env", "secureEnv", "=secureEnv"),
        *("resourceFiles", "resourceFiles[]", "outputFiles", "outputFiles[]", "tasks", "taskCount"),
        "=command",  # an empty command is refused once the tasks are known not to bring their own
    )
    TASKS_HINT: ClassVar[str] = "give exactly one of 'tasks' (a list of {id, env?, command?}) or 'taskCount'"

    job_id: Annotated[Id, Field(description="idempotency key")] | None = None
    image: Image
    command: Annotated[Command, NULLABLE] = ()
    cpu: Cpu = DEFAULT_CPU
    memory_gb: MemoryGb = DEFAULT_MEMORY_GB
    env: Env = Field(default_factory=dict)
    secure_env: Env = Field(
        default_factory=dict,
        description="passed as ACI secure values; never returned",
        json_schema_extra=secure_env_schema,
    )
    tasks: Annotated[
        tuple[TaskSpec, ...],
        # The bounds are checked with the request's sugar (`_task_list`); pydantic would restate a short list.
        Field(json_schema_extra=_tasks_schema),
        Checked(_duplicate_ids, by_item=True),
        AfterValidator(_numbered),
    ] = ()
    max_attempts: Attempts = DEFAULT_MAX_ATTEMPTS
    task_timeout_seconds: Timeout = DEFAULT_TASK_TIMEOUT_SECONDS
    job_timeout_seconds: Timeout | None = None
    priority: Annotated[Priority, Hint(choice_hint(Priority))] = Priority.REGULAR
    spot_fallback: Annotated[bool, Strict(), Hint("must be true or false")] = True
    on_success: Annotated[Cleanup, Hint(choice_hint(Cleanup, CLEANUP_HINT))] = Cleanup.DELETE
    on_failure: Annotated[Cleanup, Hint(choice_hint(Cleanup, CLEANUP_HINT))] = Cleanup.DELETE
    notify_url: Annotated[Url | None, WrapValidator(outbound_url)] = None
    depends_on: Annotated[
        DependsOn | None, Field(description="the dependsOn of every task that gives none (array sugar)")
    ] = None
    exit_conditions: ExitConditions | None = None
    on_task_failure: Annotated[TaskFailureAction, Hint(choice_hint(TaskFailureAction))] = TaskFailureAction.NO_ACTION
    job_priority: Annotated[
        JobPriority,
        Field(
            description="within the tenant, queued tasks of higher-priority jobs are admitted first; the fair share "
            "across tenants is unchanged"
        ),
    ] = 0
    resource_files: Annotated[
        ResourceFiles,
        Field(description="downloaded into every task's working directory before its command (needs blob storage)"),
    ] = ()
    output_files: Annotated[
        OutputFiles, Field(description="uploaded from every task's working directory once its command ends")
    ] = ()

    @classmethod
    def request_problems(
        cls, raw: dict[str, Any], data: dict[str, Any], request: RequestContext
    ) -> tuple[dict[str, Any], list[Problem]]:
        data = dict(data)  # the client's own object stays as it was sent
        problems = _task_list(data)
        for name in sorted(_usable_names(raw.get("env")) & _usable_names(raw.get("secureEnv"))):
            problems.append((("", "secureEnv", name), "is also set in env; set each variable in one place only"))
        # An empty (or unusable) command is refused only where a task would run it.
        command = raw.get("command", ABSENT)
        if command is not ABSENT and not (_is_argv(command) and command) and _some_task_lacks_command(data):
            problems.append((("", "command"), "must not be empty (omit it to run the image's default command)"))
        problems.extend(_commands_for_files(raw, data))
        return data, problems

    @classmethod
    def request_after(
        cls, data: dict[str, Any], parsed: JobSpec | None, found: list[Problem], request: RequestContext
    ) -> list[Problem]:
        """The dependency graph's checks, once every task and dependsOn parsed (a bad id would also read as an
        unknown one); unrelated problems (an image, a cpu) do not hold them back, so all still come at once."""
        if any(loc and loc[0] in ("tasks", "taskCount", "dependsOn") for loc, _ in found):
            return []
        if parsed is None:
            # Other fields failed: the graph needs only the tasks and the job's dependsOn, which parsed.
            try:
                tasks = _numbered(_TASKS.validate_python(data.get("tasks", ())))
                depends_on = data.get("dependsOn")
                if depends_on is not None:
                    depends_on = DependsOn.model_validate(depends_on)
            except PydanticValidationError:
                return []
            parsed = JobSpec.model_construct(tasks=tasks, depends_on=depends_on)
        if not parsed.tasks or not parsed.has_dependencies:
            return []
        try:
            parsed.graph()
        except GraphInvalid as invalid:
            # Listed after every field's own problems (see PROBLEM_ORDER); the "" adds nothing to the path.
            return [(("", path), message) for path, message in invalid.errors]
        return []

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

    @property
    def moves_files(self) -> bool:
        return bool(self.resource_files or self.output_files) or any(
            task.resource_files or task.output_files for task in self.tasks
        )

    def task_resource_files(self, task: TaskSpec) -> tuple[dict[str, Any], ...]:
        """The task's effective resource files, normalised: the job's, then the task's own."""
        return tuple(item.to_dict() for item in (*self.resource_files, *task.resource_files))

    def task_output_files(self, task: TaskSpec) -> tuple[dict[str, Any], ...]:
        """The task's effective output files, normalised: the job's, then the task's own."""
        return tuple(item.to_dict() for item in (*self.output_files, *task.output_files))


def _task_list(data: dict[str, Any]) -> list[Problem]:
    """`tasks` or `taskCount` (request sugar for tasks "0".."n-1"): exactly one, within bounds. A problem here is
    the only one reported about the tasks (the list is dropped), as an item-by-item account would be noise."""
    count = data.pop("taskCount", ABSENT)
    if ("tasks" in data) == (count is not ABSENT):
        data.pop("tasks", None)
        return [(("tasks",), JobSpec.TASKS_HINT)]
    if count is not ABSENT:
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_TASKS:
            return [(("taskCount",), f"must be an integer from 1 to {MAX_TASKS}")]
        # Built directly: ids "0".."n-1" need no checking, and a 10,000-task job should not pay for it.
        data["tasks"] = numbered_tasks(count)
        return []
    raw = data["tasks"]
    if not isinstance(raw, list) or not raw:
        data.pop("tasks")
        return [(("tasks",), 'must be a non-empty list of {"id": ...} objects')]
    if len(raw) > MAX_TASKS:
        data.pop("tasks")
        return [(("tasks",), f"has {len(raw)} tasks; at most {MAX_TASKS} are allowed per job")]
    return []


def _usable_names(env: Any) -> set[str]:
    """Names of an env object whose values are usable (a variable set twice is reported only then)."""
    if not isinstance(env, dict):
        return set()
    return {
        name
        for name, value in env.items()
        if isinstance(value, str) and len(value) <= MAX_ENV_VALUE_CHARS and "\x00" not in value
    }


def numbered_tasks(count: int) -> tuple[TaskSpec, ...]:
    """Tasks "0".."count-1", as `taskCount` asks: built as stored JSON is read (their ids need no request checks)."""
    return validate_stored(_TASKS, [{"id": str(index), "index": index} for index in range(count)])


def _some_task_lacks_command(data: dict[str, Any]) -> bool:
    """Whether a task would run the job's command: it has no usable command of its own."""
    tasks = data.get("tasks", ())
    if isinstance(tasks, tuple):  # built from taskCount: no task has its own command
        return bool(tasks)
    return isinstance(tasks, list) and any(
        isinstance(task, dict) and not _is_argv(task.get("command")) for task in tasks
    )


FILES_NEED_COMMAND = (
    "is required: {what} moves files (resourceFiles/outputFiles), and the agent that moves them runs the command "
    "itself; give the command (the image's default command cannot be wrapped)"
)


def _commands_for_files(raw: dict[str, Any], data: dict[str, Any]) -> list[Problem]:
    """A task that moves files needs a command: the job's, once when the job's own lists need it, else its own."""
    job_files = lists_files(raw)
    command = raw.get("command")
    job_runs = _is_argv(command) and bool(command)
    problems: list[Problem] = []
    if job_files and command is None and _some_task_lacks_command(data):
        # An empty job command is refused above already; an absent one only now that files need it.
        problems.append((("", "command"), FILES_NEED_COMMAND.format(what="the job")))
    tasks = data.get("tasks")
    if not isinstance(tasks, list):
        return problems  # built from taskCount: covered by the job's command above
    for index, task in enumerate(tasks):
        if not isinstance(task, dict) or (not lists_files(task) and not job_files):
            continue
        own = task.get("command")
        if own is None:
            if job_runs or job_files:
                continue  # runs the job's command, or the job's problem above already says it is missing
        elif _is_argv(own) and own:
            continue
        problems.append((("tasks", index, "command"), FILES_NEED_COMMAND.format(what="this task")))
    return problems


def _is_argv(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(arg, str) for arg in value)


def _terminates(rules: ExitConditions) -> bool:
    options = [
        *(rule.exit_options for rule in rules.codes),
        *(span.exit_options for span in rules.ranges),
        rules.pre_processing_error,
        rules.file_upload_error,
        rules.default,
    ]
    return any(item is not None and item.job_action is JobAction.TERMINATE for item in options)


_TASKS = TypeAdapter(tuple[TaskSpec, ...])
JOB_FIELDS = JobSpec.request_fields()
TASK_FIELDS = TaskSpec.request_fields()


def parse_job_spec(
    data: object, *, outbound: OutboundPolicy = STRICT_OUTBOUND, storage_enabled: bool = False
) -> JobSpec:
    """Validate `data` and return the normalized spec, or raise `JobSpecInvalid` with every error.

    `outbound` is the app's policy for tenant-aimed URLs (`Settings.outbound`); the default allows https to
    public hosts only. `storage_enabled` (`Settings.storage_enabled`): without blob storage a job that moves files
    is refused, never run without them.
    """
    if not isinstance(data, dict):
        raise JobSpecInvalid([SpecError("body", "must be a JSON object describing the job")])
    storage = [] if storage_enabled else [SpecError(path, message) for path, message in storage_off_problems(data)]
    try:
        spec = validate_request(JobSpec, data, outbound)
    except PydanticValidationError as invalid:
        found = [SpecError(spec_path(loc), message) for loc, message in problems_of(invalid)]
        raise JobSpecInvalid([*storage, *found]) from None
    if storage:
        raise JobSpecInvalid(storage)
    return spec
