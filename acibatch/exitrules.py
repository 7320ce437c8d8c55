"""Exit conditions: what a task's exit code (or a failure before it ran) means, as the job or task spelled it.

Shaped after Azure Batch's `ExitConditions`: `exitCodes: [{code, exitOptions}]`, `exitCodeRanges: [{start, end,
exitOptions}]`, `preProcessingError`, `fileUploadError` and `default`, each naming `exitOptions = {action,
dependencyAction, jobAction}`. Batch's jobAction has none/disable/terminate; acibatch has no disabled state, and its
`action` (retry | fail | succeed) replaces Batch's implicit "retry while retries remain".

Lookup order: the task's rules, then the job's (a task's rules override the job's for the codes they name); within
one set an exact code wins over a range, a range over `default`. No rule: the built-in meaning (0 succeeds, other
codes are retried while attempts remain). `preProcessingError` applies when the agent could not stage a resource
file in, `fileUploadError` when it could not upload an output file; with no such rule either fails the task.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Annotated, Any, ClassVar

from pydantic import Field, Strict
from pydantic import ValidationError as PydanticValidationError

from acibatch.models.base import (
    ApiModel,
    Checked,
    Hint,
    Problem,
    RequestContext,
    problems_of,
    spec_path,
    validate_request,
)

MAX_EXIT_RULES = 100  # codes plus ranges per exitConditions object
EXIT_CODE_MIN, EXIT_CODE_MAX = -(2**31), 2**31 - 1


class ExitAction(StrEnum):
    RETRY = "retry"
    FAIL = "fail"
    SUCCEED = "succeed"


class DependencyAction(StrEnum):
    SATISFY = "satisfy"
    BLOCK = "block"


class JobAction(StrEnum):
    NONE = "none"
    TERMINATE = "terminate"


def _words(enum: type[StrEnum]) -> str:
    return " | ".join(f"'{member}'" for member in enum)


def _is_code(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and EXIT_CODE_MIN <= value <= EXIT_CODE_MAX


ExitCode = Annotated[int, Strict(), Field(ge=EXIT_CODE_MIN, le=EXIT_CODE_MAX)]


class ExitOptions(ApiModel):
    NOT_AN_OBJECT = 'must be an object like {"action": "fail", "dependencyAction": "block"}'
    OMIT_WHEN_DEFAULT = frozenset({"dependencyAction", "jobAction"})

    action: Annotated[ExitAction, Hint(f"must be {_words(ExitAction)}")]
    dependency_action: Annotated[DependencyAction, Hint(f"must be {_words(DependencyAction)}")] | None = Field(
        default=None, description="default: satisfy when the task succeeds, block otherwise"
    )
    job_action: Annotated[JobAction, Hint(f"must be {_words(JobAction)}")] = JobAction.NONE


class ExitCodeRule(ApiModel):
    EXACT_SHAPE = 'must be {"code": <integer>, "exitOptions": {...}}'

    code: Annotated[ExitCode, Hint("must be an integer (a 32-bit exit code)")]
    exit_options: ExitOptions


class ExitCodeRange(ApiModel):
    EXACT_SHAPE = 'must be {"start": <integer>, "end": <integer>, "exitOptions": {...}}'
    PROBLEM_ORDER = ("",)
    BOUNDS: ClassVar[str] = "start and end must be integers with start <= end (both included)"

    start: ExitCode
    end: ExitCode
    exit_options: ExitOptions

    @classmethod
    def request_problems(
        cls, raw: dict[str, Any], data: dict[str, Any], request: RequestContext
    ) -> tuple[dict[str, Any], list[Problem]]:
        start, end = raw["start"], raw["end"]
        if _is_code(start) and _is_code(end) and start <= end:
            return data, []
        # Reported once for the range; the placeholders keep pydantic from restating it per bound.
        return {**data, "start": 0, "end": 0}, [((), cls.BOUNDS)]


def _duplicate_codes(value: Any) -> list[Problem]:
    if not isinstance(value, list):
        return []
    seen: dict[int, int] = {}
    problems: list[Problem] = []
    for position, item in enumerate(value):
        code = item.get("code") if isinstance(item, dict) and set(item) == {"code", "exitOptions"} else None
        if not _is_code(code):
            continue
        assert isinstance(code, int)
        if code in seen:
            problems.append(((position, "code"), f"{code} is already given at exitCodes[{seen[code]}]"))
        else:
            seen[code] = position
    return problems


class ExitConditions(ApiModel):
    """What an exit code means (Azure Batch's exitConditions): the task's rules first, then the job's; an exact code
    before a range before `default` (non-zero codes only). fileUploadError applies when an output upload failed."""

    NOT_AN_OBJECT = 'must be an object like {"exitCodes": [{"code": 3, "exitOptions": {"action": "fail"}}]}'
    OMIT_WHEN_DEFAULT = frozenset({"exitCodes", "exitCodeRanges", "preProcessingError", "fileUploadError", "default"})
    # Each list's own shape first, then the count of both, then their items.
    PROBLEM_ORDER = ("exitCodes", "exitCodeRanges", "", "exitCodes[]", "exitCodeRanges[]")

    codes: Annotated[
        tuple[ExitCodeRule, ...],
        Hint('must be a list of {"code": <integer>, "exitOptions": {...}}', collapse=False),
        Checked(_duplicate_codes, by_item=True),
    ] = Field(default=(), alias="exitCodes")
    ranges: Annotated[
        tuple[ExitCodeRange, ...],
        Hint('must be a list of {"start", "end", "exitOptions"} objects', collapse=False),
    ] = Field(default=(), alias="exitCodeRanges")
    pre_processing_error: ExitOptions | None = None
    file_upload_error: ExitOptions | None = None
    default: ExitOptions | None = None

    @classmethod
    def request_problems(
        cls, raw: dict[str, Any], data: dict[str, Any], request: RequestContext
    ) -> tuple[dict[str, Any], list[Problem]]:
        codes, ranges = raw.get("exitCodes", []), raw.get("exitCodeRanges", [])
        count = (len(codes) if isinstance(codes, list) else 0) + (len(ranges) if isinstance(ranges, list) else 0)
        if count > MAX_EXIT_RULES:
            return data, [((), f"has {count} codes and ranges; at most {MAX_EXIT_RULES}")]
        return data, []

    def for_code(self, code: int) -> ExitOptions | None:
        for rule in self.codes:
            if rule.code == code:
                return rule.exit_options
        for span in self.ranges:
            if span.start <= code <= span.end:
                return span.exit_options
        return None


def options_for_code(rules: Sequence[ExitConditions], code: int) -> ExitOptions | None:
    """The options for exit `code`: the first rule set (task, then job) naming it, else the first `default`."""
    for conditions in rules:
        found = conditions.for_code(code)
        if found is not None:
            return found
    return next((conditions.default for conditions in rules if conditions.default is not None), None)


def options_for_pre_processing(rules: Sequence[ExitConditions]) -> ExitOptions | None:
    return next((c.pre_processing_error for c in rules if c.pre_processing_error is not None), None)


def options_for_file_upload(rules: Sequence[ExitConditions]) -> ExitOptions | None:
    """The options for an output upload failure: the first rule set (task, then job) with a fileUploadError."""
    return next((c.file_upload_error for c in rules if c.file_upload_error is not None), None)


def parse_exit_conditions(value: object, path: str, errors: list[tuple[str, str]]) -> ExitConditions | None:
    """Check an `exitConditions` object; appends `(path, message)` for every problem."""
    try:
        return validate_request(ExitConditions, value)
    except PydanticValidationError as invalid:
        errors.extend((spec_path(loc, path), message) for loc, message in problems_of(invalid))
        return None
