"""Exit conditions: what a task's exit code (or a failure before it ran) means, as the job or task spelled it.

Shaped after Azure Batch's `ExitConditions`: `exitCodes: [{code, exitOptions}]`, `exitCodeRanges: [{start, end,
exitOptions}]`, `preProcessingError`, `fileUploadError` and `default`, each naming `exitOptions = {action,
dependencyAction, jobAction}`. Batch's jobAction has none/disable/terminate; acibatch has no disabled state, and its
`action` (retry | fail | succeed) replaces Batch's implicit "retry while retries remain".

Lookup order: the task's rules, then the job's (a task's rules override the job's for the codes they name); within
one set an exact code wins over a range, a range over `default`. No rule: the built-in meaning (0 succeeds, other
codes are retried while attempts remain). `fileUploadError` is accepted for Batch compatibility but never fires:
acibatch uploads no output files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

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


@dataclass(frozen=True)
class ExitOptions:
    action: ExitAction
    dependency_action: DependencyAction | None = None  # None: satisfy on success, block otherwise
    job_action: JobAction = JobAction.NONE

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"action": str(self.action)}
        if self.dependency_action is not None:
            data["dependencyAction"] = str(self.dependency_action)
        if self.job_action is not JobAction.NONE:
            data["jobAction"] = str(self.job_action)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExitOptions:
        dependency = data.get("dependencyAction")
        return cls(
            ExitAction(data["action"]),
            None if dependency is None else DependencyAction(dependency),
            JobAction(data.get("jobAction", JobAction.NONE)),
        )


@dataclass(frozen=True)
class ExitConditions:
    codes: tuple[tuple[int, ExitOptions], ...] = ()
    ranges: tuple[tuple[int, int, ExitOptions], ...] = ()
    pre_processing_error: ExitOptions | None = None
    file_upload_error: ExitOptions | None = None
    default: ExitOptions | None = None

    def for_code(self, code: int) -> ExitOptions | None:
        for value, options in self.codes:
            if value == code:
                return options
        for start, end, options in self.ranges:
            if start <= code <= end:
                return options
        return None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.codes:
            data["exitCodes"] = [{"code": code, "exitOptions": options.to_dict()} for code, options in self.codes]
        if self.ranges:
            data["exitCodeRanges"] = [
                {"start": start, "end": end, "exitOptions": options.to_dict()} for start, end, options in self.ranges
            ]
        for name, options in (
            ("preProcessingError", self.pre_processing_error),
            ("fileUploadError", self.file_upload_error),
            ("default", self.default),
        ):
            if options is not None:
                data[name] = options.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExitConditions:
        def options(name: str) -> ExitOptions | None:
            return None if data.get(name) is None else ExitOptions.from_dict(data[name])

        return cls(
            codes=tuple(
                (int(item["code"]), ExitOptions.from_dict(item["exitOptions"])) for item in data.get("exitCodes", ())
            ),
            ranges=tuple(
                (int(item["start"]), int(item["end"]), ExitOptions.from_dict(item["exitOptions"]))
                for item in data.get("exitCodeRanges", ())
            ),
            pre_processing_error=options("preProcessingError"),
            file_upload_error=options("fileUploadError"),
            default=options("default"),
        )


def options_for_code(rules: Sequence[ExitConditions], code: int) -> ExitOptions | None:
    """The options for exit `code`: the first rule set (task, then job) naming it, else the first `default`."""
    for conditions in rules:
        found = conditions.for_code(code)
        if found is not None:
            return found
    return next((conditions.default for conditions in rules if conditions.default is not None), None)


def options_for_pre_processing(rules: Sequence[ExitConditions]) -> ExitOptions | None:
    return next((c.pre_processing_error for c in rules if c.pre_processing_error is not None), None)


# -- validation -------------------------------------------------------------------------------------------------

CONDITION_FIELDS = {"exitCodes", "exitCodeRanges", "preProcessingError", "fileUploadError", "default"}
OPTION_FIELDS = {"action", "dependencyAction", "jobAction"}


def _words_of(enum: type[StrEnum]) -> tuple[str, ...]:
    # A tuple, not a set: `in` then compares with ==, so a list or an object from the JSON is simply not a member
    # (a set would hash it first and raise TypeError, a 500 instead of a 400).
    return tuple(str(member) for member in enum)


def _is_code(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and EXIT_CODE_MIN <= value <= EXIT_CODE_MAX


def _words(enum: type[StrEnum]) -> str:
    return " | ".join(f"'{member}'" for member in enum)


def _parse_options(value: object, path: str, errors: list[tuple[str, str]]) -> ExitOptions | None:
    if not isinstance(value, dict):
        errors.append((path, 'must be an object like {"action": "fail", "dependencyAction": "block"}'))
        return None
    before = len(errors)
    for unknown in sorted(set(value) - OPTION_FIELDS):
        errors.append((f"{path}.{unknown}", f"unknown field; allowed: {', '.join(sorted(OPTION_FIELDS))}"))
    action = value.get("action")
    if action not in _words_of(ExitAction):
        errors.append((f"{path}.action", f"must be {_words(ExitAction)}"))
    dependency = value.get("dependencyAction")
    if dependency is not None and dependency not in _words_of(DependencyAction):
        errors.append((f"{path}.dependencyAction", f"must be {_words(DependencyAction)}"))
    job_action = value.get("jobAction", str(JobAction.NONE))
    if job_action not in _words_of(JobAction):
        errors.append((f"{path}.jobAction", f"must be {_words(JobAction)}"))
    if len(errors) > before:
        return None
    return ExitOptions(
        ExitAction(str(action)),
        None if dependency is None else DependencyAction(dependency),
        JobAction(job_action),
    )


def parse_exit_conditions(value: object, path: str, errors: list[tuple[str, str]]) -> ExitConditions | None:
    """Check an `exitConditions` object; appends `(path, message)` for every problem."""
    if not isinstance(value, dict):
        errors.append((path, 'must be an object like {"exitCodes": [{"code": 3, "exitOptions": {"action": "fail"}}]}'))
        return None
    before = len(errors)
    for unknown in sorted(set(value) - CONDITION_FIELDS):
        errors.append((f"{path}.{unknown}", f"unknown field; allowed: {', '.join(sorted(CONDITION_FIELDS))}"))
    codes: list[tuple[int, ExitOptions]] = []
    raw_codes = value.get("exitCodes", [])
    raw_ranges = value.get("exitCodeRanges", [])
    if not isinstance(raw_codes, list):
        errors.append((f"{path}.exitCodes", 'must be a list of {"code": <integer>, "exitOptions": {...}}'))
        raw_codes = []
    if not isinstance(raw_ranges, list):
        errors.append((f"{path}.exitCodeRanges", 'must be a list of {"start", "end", "exitOptions"} objects'))
        raw_ranges = []
    if len(raw_codes) + len(raw_ranges) > MAX_EXIT_RULES:
        errors.append((path, f"has {len(raw_codes) + len(raw_ranges)} codes and ranges; at most {MAX_EXIT_RULES}"))
    seen: dict[int, int] = {}
    for position, item in enumerate(raw_codes):
        item_path = f"{path}.exitCodes[{position}]"
        if not isinstance(item, dict) or set(item) != {"code", "exitOptions"}:
            errors.append((item_path, 'must be {"code": <integer>, "exitOptions": {...}}'))
            continue
        code = item["code"]
        if not _is_code(code):
            errors.append((f"{item_path}.code", "must be an integer (a 32-bit exit code)"))
        elif code in seen:
            errors.append((f"{item_path}.code", f"{code} is already given at exitCodes[{seen[code]}]"))
        options = _parse_options(item["exitOptions"], f"{item_path}.exitOptions", errors)
        if _is_code(code) and code not in seen:
            seen[code] = position
            if options is not None:
                codes.append((code, options))
    ranges: list[tuple[int, int, ExitOptions]] = []
    for position, item in enumerate(raw_ranges):
        item_path = f"{path}.exitCodeRanges[{position}]"
        if not isinstance(item, dict) or set(item) != {"start", "end", "exitOptions"}:
            errors.append((item_path, 'must be {"start": <integer>, "end": <integer>, "exitOptions": {...}}'))
            continue
        start, end = item["start"], item["end"]
        if not (_is_code(start) and _is_code(end)) or start > end:
            errors.append((item_path, "start and end must be integers with start <= end (both included)"))
            start = None
        options = _parse_options(item["exitOptions"], f"{item_path}.exitOptions", errors)
        if start is not None and options is not None:
            ranges.append((int(start), int(end), options))
    named: dict[str, ExitOptions | None] = {}
    for name in ("preProcessingError", "fileUploadError", "default"):
        named[name] = None if value.get(name) is None else _parse_options(value[name], f"{path}.{name}", errors)
    if len(errors) > before:
        return None
    return ExitConditions(
        tuple(codes), tuple(ranges), named["preProcessingError"], named["fileUploadError"], named["default"]
    )
