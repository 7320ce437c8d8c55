"""`dependsOn`: one task's upstream tasks as the client writes them, the model that checks their shape and keeps
them (array sugar unexpanded, so a stored spec stays small). `acibatch.dag` checks them against the job's tasks.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    Strict,
    StringConstraints,
    WithJsonSchema,
    WrapValidator,
)
from pydantic import ValidationError as PydanticValidationError

from acibatch.models.base import (
    ApiModel,
    Hint,
    Problem,
    RequestContext,
    problems_of,
    raise_problems,
    spec_path,
    validate_request,
)


class Condition(StrEnum):
    ALL_SUCCEEDED = "allSucceeded"
    ALL_COMPLETED = "allCompleted"
    ANY_SUCCEEDED = "anySucceeded"


class ArrayMode(StrEnum):
    N_TO_N = "nToN"  # task k of this group depends on task k of the named group (AWS Batch N_TO_N)
    SEQUENTIAL = "sequential"  # task k of the group depends on task k-1 of the same group (AWS Batch SEQUENTIAL)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class TaskIdRange(ApiModel):
    """One `taskIdRanges` item as the client writes it; `DependsOn` keeps it as a `(start, end)` pair."""

    EXACT_SHAPE = 'must be {"start": <integer>, "end": <integer>} (both ends included)'

    start: Annotated[int, Strict(), Field(ge=0)]
    end: Annotated[int, Strict(), Field(ge=0)]

    @classmethod
    def request_problems(
        cls, raw: dict[str, Any], data: dict[str, Any], request: RequestContext
    ) -> tuple[dict[str, Any], list[Problem]]:
        start, end = raw["start"], raw["end"]
        if not (_is_int(start) and _is_int(end)):
            raise_problems([((), str(cls.EXACT_SHAPE))])
        if not 0 <= start <= end:
            raise_problems([((), f"start must be 0 or more and at most end (got {start}..{end})")])
        return data, []


def _range_pair(value: Any, handler: Callable[[Any], tuple[int, int]]) -> tuple[int, int]:
    if isinstance(value, tuple):  # built in Python as (start, end); JSON never decodes to a tuple
        return handler(value)
    parsed = TaskIdRange.model_validate(value)
    return (parsed.start, parsed.end)


RangePair = Annotated[
    tuple[int, int],
    WrapValidator(_range_pair),
    PlainSerializer(lambda pair: {"start": pair[0], "end": pair[1]}),
    WithJsonSchema(TaskIdRange.model_json_schema(by_alias=True)),
]


def _usable_ids(value: Any) -> bool:
    """A non-empty `taskIds` that is itself valid (an invalid one is reported as such, not as mixed with `array`)."""
    return isinstance(value, list) and bool(value) and all(isinstance(item, str) and item for item in value)


def _usable_ranges(value: Any) -> bool:
    return isinstance(value, list) and any(
        isinstance(item, dict)
        and set(item) == {"start", "end"}
        and _is_int(item["start"])
        and _is_int(item["end"])
        and 0 <= item["start"] <= item["end"]
        for item in value
    )


def _unique(ids: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(ids))


# Edges after expanding ranges and array sugar. A 10,000-task reduce (one task on all others) is 10,000 edges;
# the limit leaves room for ten such fan-ins while keeping the graph's rebuild on each replay small.
MAX_EDGES = 100_000


def _with_limits(schema: dict[str, Any]) -> None:
    schema["description"] = schema["description"].replace("MAX_EDGES", str(MAX_EDGES))


class DependsOn(ApiModel):
    """Upstream tasks, as written (array sugar unexpanded, so a stored spec stays small): `taskIds` and/or
    `taskIdRanges` (inclusive, integer ids only), or `array` (a task group, 'job' for ungrouped tasks) with `mode`
    nToN (task k after task k of that group) or sequential (task k after task k-1 of its own group). Checked at
    submit: unknown ids, self-dependencies, cycles (one is named) and at most MAX_EDGES edges."""

    model_config = ConfigDict(json_schema_extra=_with_limits)
    NOT_AN_OBJECT = 'must be an object like {"taskIds": ["a"]} or {"array": "map", "mode": "nToN"}'
    OMIT_WHEN_DEFAULT = frozenset({"taskIds", "taskIdRanges", "array", "mode", "condition"})
    PROBLEM_ORDER = ("taskIds", "taskIdRanges", "array", "mode", "", "condition")
    ARRAY_HINT: ClassVar[str] = "must name a task group (a task's 'group', or 'job' for ungrouped tasks)"
    MODE_HINT: ClassVar[str] = "must be the string 'nToN' or 'sequential'"

    task_ids: Annotated[
        tuple[Annotated[str, StringConstraints(min_length=1)], ...],
        Hint("must be a list of task id strings"),
        AfterValidator(_unique),
    ] = ()
    ranges: Annotated[
        tuple[RangePair, ...], Hint('must be a list of {"start": 0, "end": 9} objects', collapse=False)
    ] = Field(default=(), alias="taskIdRanges")
    array: Annotated[str, StringConstraints(min_length=1), Hint(ARRAY_HINT)] | None = None
    mode: Annotated[ArrayMode, Hint(MODE_HINT)] | None = None
    condition: Annotated[Condition, Hint("must be the string 'allSucceeded', 'allCompleted' or 'anySucceeded'")] = (
        Condition.ALL_SUCCEEDED
    )

    @classmethod
    def request_problems(
        cls, raw: dict[str, Any], data: dict[str, Any], request: RequestContext
    ) -> tuple[dict[str, Any], list[Problem]]:
        problems: list[Problem] = []
        array, mode = raw.get("array"), raw.get("mode")
        if array is not None or mode is not None:
            if array is None:
                problems.append((("array",), cls.ARRAY_HINT))
            if mode is None:
                problems.append((("mode",), cls.MODE_HINT))
            if _usable_ids(raw.get("taskIds")) or _usable_ranges(raw.get("taskIdRanges")):
                problems.append(((), "give either 'array' (with 'mode') or 'taskIds'/'taskIdRanges', not both"))
        elif not {"taskIds", "taskIdRanges"} & set(raw):
            problems.append(((), "must name upstream tasks: 'taskIds', 'taskIdRanges' or 'array' with 'mode'"))
        return data, problems


def parse_depends_on(value: object, path: str, errors: list[tuple[str, str]]) -> DependsOn | None:
    """Check one `dependsOn` object's shape (ids are checked against the job in `build_graph`)."""
    try:
        return validate_request(DependsOn, value)
    except PydanticValidationError as invalid:
        errors.extend((spec_path(loc, path), message) for loc, message in problems_of(invalid))
        return None
