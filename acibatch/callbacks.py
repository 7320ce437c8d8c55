"""The container's callback: validate the body a task posts to `/api/callbacks/{jobId}/{taskId}`.

The validated report travels to the task orchestration as an external event, together with the attempt
whose token authenticated it, so the orchestration can ignore a report that belongs to an older attempt.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from acibatch.spec import json_type

MAX_RESULT_BYTES = 16 * 1024
MAX_MESSAGE_CHARS = 2000
# progress and result travel on as external-event data and custom status. The Durable extension reads event
# data with a default Json.NET reader (MessagePayloadDataConverter.ConvertToJToken), which stops at 64 levels
# since Json.NET 13.0.1 and answers the raise with 400; 32 leaves room for the record that wraps them.
MAX_JSON_DEPTH = 32
_FIELDS = {"status", "exitCode", "message", "progress", "result"}


class CallbackStatus(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    PROGRESS = "progress"


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": str(self.status),
            "attempt": self.attempt,
            "exitCode": self.exit_code,
            "message": self.message,
            "progress": self.progress,
            "result": self.result,
        }

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
        choices = "the string 'succeeded', 'failed' or 'progress'"
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
    if errors:
        raise CallbackInvalid(errors)
    return CallbackReport(
        status=CallbackStatus(str(status)),
        attempt=attempt,
        exit_code=exit_code if isinstance(exit_code, int) else None,
        message=message if isinstance(message, str) else None,
        progress=body.get("progress"),
        result=body.get("result"),
    )
