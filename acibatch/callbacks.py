"""The container's callback: validate the body a task posts to `/api/callbacks/{jobId}/{taskId}`.

The validated report travels to the task orchestration as an external event, together with the attempt
whose token authenticated it, so the orchestration can ignore a report that belongs to an older attempt.

Two senders report on an attempt, each with a token of its own (`acibatch.tokens.TokenPurpose`): the task's own
code (`succeeded`, `failed`, `progress`) and, for a task run with the acibatch agent, the agent's sidecar, whose
`completed` report ends the attempt once the logs are saved and the outputs uploaded (`outputs`, and `failure`
when a file could not be moved). A status is accepted only with its sender's token (`sender_refusal`), so user
code cannot end its attempt before the uploads by posting `completed`. An event of the first three statuses
carries exactly the keys it always had, so histories written before the agent replay unchanged.

A task started with per-attempt event names hears each attempt's reports under a name of that attempt's own
(`attempt_event`), so a report of another attempt can never stand in for this one's (`api/callbacks.py`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from acibatch import durable_names as names
from acibatch.records import FailureCategory
from acibatch.spec import json_type
from acibatch.tokens import TokenPurpose

MAX_RESULT_BYTES = 16 * 1024
MAX_MESSAGE_CHARS = 2000
# progress and result travel on as external-event data and custom status. The Durable extension reads event
# data with a default Json.NET reader (MessagePayloadDataConverter.ConvertToJToken), which stops at 64 levels
# since Json.NET 13.0.1 and answers the raise with 400; 32 leaves room for the record that wraps them.
MAX_JSON_DEPTH = 32
MAX_FILE_CHARS = 1024  # a failure's file: a path under the working directory or a blob name
_FIELDS = {"status", "exitCode", "message", "progress", "result", "outputs", "failure"}
_AGENT_FIELDS = {"outputs", "failure"}  # only in the agent's `completed` report
_TASK_FIELDS = {"message", "progress", "result"}  # never in it: the task's own reports carry them
_OUTPUTS_FIELDS = ("count", "bytes")
_FAILURE_FIELDS = ("category", "message", "file")
# A query string inside free text (a storage error may quote a URL): the agent scrubs its messages, and so does
# this, since a SAS must never reach history, custom status or an API answer.
_QUERY = re.compile(r"\?[^\s'\"]*")


class CallbackStatus(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    PROGRESS = "progress"
    COMPLETED = "completed"  # the acibatch agent: logs saved, outputs uploaded (or `failure`), the attempt is over


# Which token may send each status: the agent's report ends the attempt, the task's are the user's own word.
SENDER_OF = {
    CallbackStatus.SUCCEEDED: TokenPurpose.TASK,
    CallbackStatus.FAILED: TokenPurpose.TASK,
    CallbackStatus.PROGRESS: TokenPurpose.TASK,
    CallbackStatus.COMPLETED: TokenPurpose.AGENT,
}


def attempt_event(attempt: int) -> str:
    """The event a report of this attempt is raised under when the task waits under per-attempt names (the reports
    of v3 tokens): `Callback.a<attempt>`."""
    return f"{names.EVENT_CALLBACK}.a{attempt}"


def sender_refusal(body: object, sender: TokenPurpose) -> str | None:
    """Why a body with a valid token of `sender` must be refused (403), or None. Read before the body is validated:
    a status the sender may not send is refused whatever else the body holds. An unknown status is left to
    `parse_callback`, which says what the allowed ones are."""
    status = body.get("status") if isinstance(body, Mapping) else None
    if not isinstance(status, str) or status not in SENDER_OF:
        return None
    needed = SENDER_OF[CallbackStatus(status)]
    if needed is sender:
        return None
    if needed is TokenPurpose.AGENT:
        return "only the acibatch agent may report 'completed'; a task reports 'succeeded', 'failed' or 'progress'"
    return f"the acibatch agent's token may only report 'completed', not '{status}'"


def scrub(text: str) -> str:
    """`text` with every query string replaced by `?...`."""
    return _QUERY.sub("?...", text)


FAILURE_WORDS = {
    FailureCategory.PRE_PROCESSING_ERROR: "a resource file could not be staged in",
    FailureCategory.FILE_UPLOAD_ERROR: "an output file could not be uploaded",
}
FAILURE_SHAPE = 'must be null or an object like {"category": "fileUploadError", "message": "...", "file": "..."}'


@dataclass(frozen=True)
class FileFailure:
    """Why the agent could not move a file: Batch's failure category, what went wrong and which file."""

    category: FailureCategory
    message: str | None = None
    file: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"category": str(self.category), "message": self.message, "file": self.file}

    @classmethod
    def from_dict(cls, data: Any) -> FileFailure | None:
        """None for a missing or unreadable failure (the agent's own output, checked when it came in)."""
        if not isinstance(data, Mapping):
            return None
        try:
            category = FailureCategory(str(data.get("category")))
        except ValueError:
            return None
        message, file = data.get("message"), data.get("file")
        return cls(
            category,
            scrub(message)[:MAX_MESSAGE_CHARS] if isinstance(message, str) else None,
            scrub(file)[:MAX_FILE_CHARS] if isinstance(file, str) else None,
        )

    def describe(self) -> str:
        """The error a task shows: what went wrong, naming the file."""
        what = self.message or FAILURE_WORDS[self.category]
        return f"{what} (file {self.file})" if self.file else what


class CallbackInvalid(ValueError):
    """The body is not a valid callback; `errors` lists `(field, what to fix)` pairs."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{path}: {message}" for path, message in errors))
        self.errors = errors


@dataclass(frozen=True)
class CallbackReport:
    status: CallbackStatus
    attempt: int
    exit_code: int | None = None
    message: str | None = None
    progress: Any = None
    result: Any = None
    outputs: Mapping[str, int] | None = None  # completed: {"count", "bytes"} of the outputs uploaded
    failure: FileFailure | None = None  # completed: the file that could not be moved

    def to_dict(self) -> dict[str, Any]:
        data = {
            "status": str(self.status),
            "attempt": self.attempt,
            "exitCode": self.exit_code,
            "message": self.message,
            "progress": self.progress,
            "result": self.result,
        }
        if self.status is CallbackStatus.COMPLETED:
            data["outputs"] = None if self.outputs is None else dict(self.outputs)
            data["failure"] = None if self.failure is None else self.failure.to_dict()
        return data

    @classmethod
    def from_event(cls, payload: Any) -> CallbackReport | None:
        """Decode an external event payload; None when it is not a callback report at all.

        Events raised through the Python durable client arrive JSON-encoded twice (Durable Functions Python
        issue #295, reproduced by devhost), so a string payload is decoded once more.
        """
        data = decode_event_payload(payload)
        if not isinstance(data, dict):
            return None
        try:
            return cls(
                status=CallbackStatus(data["status"]),
                attempt=int(data["attempt"]),
                exit_code=data.get("exitCode"),
                message=data.get("message"),
                progress=data.get("progress"),
                result=data.get("result"),
                outputs=data.get("outputs"),
                failure=FileFailure.from_dict(data.get("failure")),
            )
        except (KeyError, ValueError, TypeError):
            return None


def decode_event_payload(payload: Any) -> Any:
    """Undo the Python client's double JSON encoding of external event data when present."""
    if isinstance(payload, str):
        try:
            return json.loads(payload)
        except ValueError:
            return payload
    return payload


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _json_problem(value: Any) -> str | None:
    """What makes a free-form JSON value unfit to pass on, or None.

    NaN/Infinity are refused because Python's json writes them and other parsers reject them. The walk is
    iterative so a deeply nested value cannot exhaust the stack before its depth is measured.
    """
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return "must not contain NaN or Infinity"
        if isinstance(item, list | dict):
            if depth > MAX_JSON_DEPTH:
                return f"must not nest lists and objects more than {MAX_JSON_DEPTH} levels deep"
            children = item.values() if isinstance(item, dict) else item
            pending.extend((child, depth + 1) for child in children)
    return None


def parse_callback(body: object, attempt: int) -> CallbackReport:
    """Validate a callback body and report every problem at once."""
    if not isinstance(body, Mapping):
        raise CallbackInvalid([("body", 'must be a JSON object like {"status": "succeeded"}')])
    errors: list[tuple[str, str]] = []
    for unknown in sorted(set(body) - _FIELDS):
        errors.append((unknown, f"unknown field; allowed fields are {', '.join(sorted(_FIELDS))}"))
    status = body.get("status")
    allowed = {s.value for s in CallbackStatus}
    # Check the type before the membership test: an object or a list is unhashable.
    if not isinstance(status, str) or status not in allowed:
        choices = "the string 'succeeded', 'failed', 'progress' or 'completed'"
        got = f"'{status[:40]}'" if isinstance(status, str) else json_type(status)
        errors.append(("status", f"required: {choices}" if "status" not in body else f"must be {choices}, not {got}"))
    exit_code = body.get("exitCode")
    if exit_code is not None and not (_is_int(exit_code) and -(2**31) <= exit_code < 2**31):
        errors.append(("exitCode", "must be an integer (32-bit)"))
    message = body.get("message")
    if message is not None and (not isinstance(message, str) or len(message) > MAX_MESSAGE_CHARS):
        errors.append(("message", f"must be a string of at most {MAX_MESSAGE_CHARS} characters"))
    for name in ("progress", "result"):
        value = body.get(name)
        if value is None:
            continue
        problem = _json_problem(value)
        if problem:
            errors.append((name, problem))
            continue
        size = len(json.dumps(value, separators=(",", ":")).encode())
        if size > MAX_RESULT_BYTES:
            errors.append((name, f"is {size} bytes as JSON; the limit is {MAX_RESULT_BYTES} bytes"))
    errors += _sender_problems(body, status)
    outputs_problem = _outputs_problem(body.get("outputs"))
    if outputs_problem:
        errors.append(("outputs", outputs_problem))
    errors += _failure_problems(body.get("failure"))
    if errors:
        raise CallbackInvalid(errors)
    return CallbackReport(
        status=CallbackStatus(str(status)),
        attempt=attempt,
        exit_code=exit_code if isinstance(exit_code, int) else None,
        message=message if isinstance(message, str) else None,
        progress=body.get("progress"),
        result=body.get("result"),
        outputs=body.get("outputs"),
        failure=FileFailure.from_dict(body.get("failure")),
    )


def _sender_problems(body: Mapping[str, Any], status: object) -> list[tuple[str, str]]:
    """Fields of the other sender's reports: `outputs`/`failure` belong to the agent, the rest to the task."""
    if status == CallbackStatus.COMPLETED:
        return [(name, "is not part of the agent's 'completed' report") for name in sorted(_TASK_FIELDS & set(body))]
    if isinstance(status, str) and status in {s.value for s in CallbackStatus}:
        return [(name, "is only part of the agent's 'completed' report") for name in sorted(_AGENT_FIELDS & set(body))]
    return []


def _count(value: object) -> bool:
    return _is_int(value) and 0 <= value < 2**63  # type: ignore[operator]


def _outputs_problem(value: object) -> str | None:
    if value is None:
        return None
    shape = 'must be an object like {"count": 3, "bytes": 1234} (whole numbers, 0 or more)'
    if not isinstance(value, Mapping) or set(value) != set(_OUTPUTS_FIELDS):
        return shape
    return None if all(_count(value[name]) for name in _OUTPUTS_FIELDS) else shape


def _failure_problems(value: object) -> list[tuple[str, str]]:
    if value is None:
        return []
    if not isinstance(value, Mapping):
        return [("failure", FAILURE_SHAPE)]
    unknown = sorted(set(value) - set(_FAILURE_FIELDS))
    errors = [(f"failure.{name}", "unknown field; allowed fields are category, file, message") for name in unknown]
    category = value.get("category")
    if not isinstance(category, str) or category not in {c.value for c in FailureCategory}:
        errors.append(("failure.category", "must be the string 'preProcessingError' or 'fileUploadError'"))
    for name, limit in (("message", MAX_MESSAGE_CHARS), ("file", MAX_FILE_CHARS)):
        text = value.get(name)
        if text is not None and (not isinstance(text, str) or len(text) > limit):
            errors.append((f"failure.{name}", f"must be null or a string of at most {limit} characters"))
    return errors
