"""The job spec's limits and field types, each field with the message a client reads when it is wrong.

`acibatch.spec` builds the job's models from these; limits follow ACI's (see the ACI reference §4.6, §6.1): one
container group per task attempt, at most 4 vCPU and 16 GB on Spot and the common Regular SKU.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, Field, Strict, StringConstraints, WrapValidator
from pydantic import ValidationError as PydanticValidationError

from acibatch.models.base import NULLABLE, Checked, Hint, Problem, current_request, problem, raise_problems
from acibatch.outbound import MAX_URL_CHARS, OutboundPolicy, OutboundRefused, check_url

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
CLEANUP_HINT = " ('stop' keeps the stopped group for inspection)"

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

NO_NUL = "^[^\\x00]*$"  # read the same by pydantic's regex engine and by JSON Schema (ECMA-262)


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


# -- field types: each with the message a client reads when it is wrong --------------------------------------

ID_HINT = "must be 1-63 characters: letters, digits, '-', '_' or '.', starting with a letter or digit"
LIST_OF_STRINGS = 'must be a list of strings, e.g. ["python3", "main.py"]'


def choice_hint(enum: type[StrEnum], hint: str = "") -> Callable[[Any], str]:
    allowed = " or ".join(f"'{member}'" for member in enum)

    def message(value: Any) -> str:
        got = f"not '{value[:40]}'" if isinstance(value, str) else f"not {json_type(value)}"
        return f"must be the string {allowed}, {got}{hint}"

    return message


def _whole(low: int, high: int) -> tuple[Any, ...]:
    """The rules of an integer from `low` to `high`, for `Annotated[int, *_whole(low, high)]`."""
    return Strict(), Field(ge=low, le=high), Hint(f"must be an integer from {low} to {high}")


RESERVED_NAME = f"names starting with {RESERVED_ENV_PREFIX} are reserved for acibatch; rename it"


def _env_value_hint(value: Any) -> str:
    if not isinstance(value, str):
        return "value must be a string (quote numbers and booleans)"
    return f"value must be at most {MAX_ENV_VALUE_CHARS} characters and contain no NUL"


def _env_problems(value: Any) -> list[Problem]:
    """The env rules pydantic's own checks cannot word: the count (named in the message) and reserved names."""
    if not isinstance(value, dict):
        return []
    problems: list[Problem] = []
    if len(value) > MAX_ENV_VARS:
        problems.append(((), f"has {len(value)} variables; at most {MAX_ENV_VARS} are allowed"))
    for name in value:
        if isinstance(name, str) and name.upper().startswith(RESERVED_ENV_PREFIX) and ENV_NAME_RULE.fullmatch(name):
            problems.append(((name,), RESERVED_NAME))
    return problems


def _command_problems(value: Any) -> list[Problem]:
    if not isinstance(value, list) or not all(isinstance(arg, str) for arg in value):
        return [((), LIST_OF_STRINGS)]
    problems: list[Problem] = []
    if len(value) > MAX_COMMAND_ARGS:
        problems.append(((), f"has {len(value)} arguments; at most {MAX_COMMAND_ARGS} are allowed"))
    for position, arg in enumerate(value):
        if position == 0 and not arg:
            problems.append(((0,), "the program must not be empty"))
        if len(arg) > MAX_ARG_CHARS or "\x00" in arg:
            problems.append(((position,), f"must be at most {MAX_ARG_CHARS} characters and contain no NUL"))
    return problems


def _argv(value: Any, handler: Callable[[Any], tuple[str, ...]]) -> tuple[str, ...]:
    """pydantic checks the list; only a command it refuses (or whose program is empty) is worded here, item by
    item as the client wrote it."""
    try:
        argv = handler(value)
    except PydanticValidationError:
        argv = None
    if argv is None or (argv and not argv[0]):
        raise_problems(_command_problems(value))
    assert argv is not None
    return argv


def _program_schema(schema: dict[str, Any]) -> None:
    # JSON Schema 2020-12: `items` covers only the elements after `prefixItems`, so the program restates it.
    schema["prefixItems"] = [{**schema["items"], "minLength": 1, "description": "the program"}]


def _on_step(step: float, digits: int) -> Callable[[float], float]:
    def check(value: float) -> float:
        if abs(round(value / step) * step - value) > 1e-9 or abs(round(value, digits) - value) > 1e-9:
            raise ValueError("off the step")
        return value

    return check


def _reserved_pattern() -> str:
    # Any letter case: the check compares names upper-cased.
    return "^" + "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in RESERVED_ENV_PREFIX)


def _env_schema(schema: dict[str, Any]) -> None:
    schema["maxProperties"] = MAX_ENV_VARS  # checked by `_env_count`, whose message counts the variables
    schema["propertyNames"] = {**schema.get("propertyNames", {}), "not": {"pattern": _reserved_pattern()}}


def secure_env_schema(schema: dict[str, Any]) -> None:
    _env_schema(schema)
    schema["writeOnly"] = True


def outbound_url(value: Any, handler: Callable[[Any], str | None]) -> str | None:
    request = current_request()
    if request is not None and request.outbound is not None and value is not None:
        # Everything refusable without DNS is refused here, with what to fix; the send re-checks the addresses.
        try:
            check_url(value, request.outbound)
        except OutboundRefused as refused:
            raise problem(str(refused)) from None
    return handler(value)


Id = Annotated[str, StringConstraints(pattern=ID_RULE.pattern), Hint(ID_HINT)]
EnvName = Annotated[
    str,
    StringConstraints(pattern=ENV_NAME_RULE.pattern),
    Hint("name must be 1-63 letters, digits or '_', not starting or ending with '_'"),
]
EnvValue = Annotated[str, StringConstraints(max_length=MAX_ENV_VALUE_CHARS, pattern=NO_NUL), Hint(_env_value_hint)]
Env = Annotated[
    dict[EnvName, EnvValue],
    Field(json_schema_extra=_env_schema),
    Checked(_env_problems, own_hint='must be an object of NAME: "value" strings'),
    NULLABLE,
]
Arg = Annotated[str, StringConstraints(max_length=MAX_ARG_CHARS, pattern=NO_NUL)]
Command = Annotated[
    tuple[Arg, ...],
    Field(
        max_length=MAX_COMMAND_ARGS,
        json_schema_extra=_program_schema,
        description="argv (exec form); omit (or null) to run the image's default command.",
    ),
    WrapValidator(_argv),
]
Image = Annotated[
    str,
    StringConstraints(max_length=512, pattern=IMAGE_RULE.pattern),
    Field(examples=["myregistry.azurecr.io/team/worker:1.2"]),
    Hint(
        "must be an image reference like 'myregistry.azurecr.io/team/app:1.2' "
        "(lowercase repository, optional :tag and/or @sha256:digest)"
    ),
]
Cpu = Annotated[
    float,
    Strict(),
    Field(ge=CPU_STEP, le=MAX_CPU, allow_inf_nan=False, json_schema_extra={"multipleOf": CPU_STEP}),
    AfterValidator(_on_step(CPU_STEP, 2)),
    Hint(f"must be a number from {CPU_STEP} to {MAX_CPU} in steps of {CPU_STEP}"),
]
MemoryGb = Annotated[
    float,
    Strict(),
    Field(ge=MIN_MEMORY_GB, le=MAX_MEMORY_GB, allow_inf_nan=False, json_schema_extra={"multipleOf": 0.1}),
    AfterValidator(_on_step(0.1, 1)),
    Hint(f"must be a number from {MIN_MEMORY_GB} to {MAX_MEMORY_GB} in steps of 0.1"),
]
Attempts = Annotated[int, *_whole(1, MAX_ATTEMPTS)]
Timeout = Annotated[int, *_whole(1, MAX_TIMEOUT_SECONDS)]
JobPriority = Annotated[int, *_whole(MIN_JOB_PRIORITY, MAX_JOB_PRIORITY)]
Url = Annotated[str, StringConstraints(max_length=MAX_URL_CHARS), Field(json_schema_extra={"format": "uri"})]
