"""The ACI activities' inputs and results: create_group, get_group_state, restart_group, cleanup_group, and
read_attempt_result (what the acibatch agent recorded for an attempt, read when its group has ended).

Expected ARM failures travel as data (`CreateResult.error`, `GroupStateAnswer.throttled`,
`CleanupResult.retry_after`) so the task orchestrator decides on them with the policy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from acibatch.aci import ArmError
from acibatch.callbacks import FileFailure
from acibatch.messages.wire import optional_float, optional_int
from acibatch.plan import TaskInput
from acibatch.tokens import TokenFormat


@dataclass(frozen=True, slots=True)
class GroupRef:
    """`get_group_state` and `restart_group`: which container group."""

    name: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name}

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> GroupRef:
        return cls(str(data["name"]))


@dataclass(frozen=True, slots=True)
class CreateGroupInput:
    """`create_group`: the task (its `TaskInput` fields, flat) and this attempt's group."""

    task: TaskInput
    name: str
    attempt: int
    priority: str
    owner: str  # the task orchestration's instance id (tagged on the group; the callback token is bound to it)
    created_at: int  # epoch seconds
    # The callback tokens to mint: v3 for a task that waits under per-attempt event names. A request without the
    # field (every create of a task started before them) mints v2, so its reports reach the name it waits under.
    token_format: TokenFormat = TokenFormat.V2

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.task.to_dict(),
            "name": self.name,
            "attempt": self.attempt,
            "priority": self.priority,
            "owner": self.owner,
            "createdAt": self.created_at,
            **({} if self.token_format is TokenFormat.V2 else {"tokenFormat": str(self.token_format)}),
        }

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> CreateGroupInput:
        return cls(
            TaskInput.from_dict(data),
            str(data["name"]),
            int(data["attempt"]),
            str(data["priority"]),
            str(data["owner"]),
            int(data["createdAt"]),
            TokenFormat(data.get("tokenFormat", TokenFormat.V2)),
        )


@dataclass(frozen=True, slots=True)
class CreateResult:
    error: ArmError | None = None  # None: created (or already there); else ARM's failure as data

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        if self.error is None:
            return {"ok": True}
        return {"ok": False, "error": self.error.to_dict()}

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> CreateResult:
        if data["ok"]:
            return cls()
        return cls(ArmError.from_dict(data["error"]))


@dataclass(frozen=True, slots=True)
class GroupStateAnswer:
    """`get_group_state`: the group's state as `acibatch.aci.GroupState.to_dict()` gives it (read by
    `acibatch.observe`), or, when ARM throttled the read, only how long it asked to wait."""

    state: Mapping[str, Any] | None
    throttled: float | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.throttled is not None:
            return {"throttled": self.throttled}
        return dict(self.state or {})

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> GroupStateAnswer:
        if "throttled" in data:
            return cls(None, float(data["throttled"] or 0.0))
        return cls(data)


@dataclass(frozen=True, slots=True)
class CleanupRequest:
    """`cleanup_group`: stop and/or delete a group, keeping its log tail.

    `exit_code` is what the orchestrator knows of how the container ended (it spares a state read); the key is
    sent only with `with_exit_code`, as the attempt's final cleanup always sent it (even as null) and the
    cleanups before a re-create never did, so histories keep their inputs.
    """

    name: str
    stop: bool
    delete: bool
    exit_code: int | None = None
    with_exit_code: bool = False

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "stop": self.stop, "delete": self.delete}
        if self.with_exit_code:
            data["exitCode"] = self.exit_code
        return data

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> CleanupRequest:
        return cls(
            str(data["name"]),
            bool(data.get("stop")),
            bool(data.get("delete")),
            optional_int(data, "exitCode"),
            "exitCode" in data,
        )


@dataclass(frozen=True, slots=True)
class CleanupResult:
    log_tail: str | None = None
    exit_code: int | None = None
    existed: bool | None = None
    retry_after: float | None = None  # ARM throttled the delete: ask again after this many seconds

    def to_dict(self) -> dict[str, Any]:
        return {
            "logTail": self.log_tail,
            "exitCode": self.exit_code,
            "existed": self.existed,
            "retryAfter": self.retry_after,
        }

    @classmethod
    def parse(cls, data: Any) -> CleanupResult:
        """Anything but a dict (an activity that returned nothing) reads as nothing learned."""
        if not isinstance(data, Mapping):
            return cls()
        return cls(
            data.get("logTail"),
            optional_int(data, "exitCode"),
            data.get("existed"),
            optional_float(data, "retryAfter"),
        )

    def over(self, earlier: CleanupResult) -> CleanupResult:
        """This result, with what `earlier` (a throttled try of the same cleanup) learned where this one has
        nothing: a delete retried after a 429 no longer stops the group, so it no longer reads the log."""
        return CleanupResult(
            self.log_tail if self.log_tail is not None else earlier.log_tail,
            self.exit_code if self.exit_code is not None else earlier.exit_code,
            self.existed if self.existed is not None else earlier.existed,
            self.retry_after if self.retry_after is not None else earlier.retry_after,
        )


@dataclass(frozen=True, slots=True)
class AttemptRef:
    """`read_attempt_result`: which attempt of which task (its result.json is named by them, nothing secret)."""

    tenant: str
    job_id: str
    task_id: str
    attempt: int

    def to_dict(self) -> dict[str, Any]:
        return {"tenant": self.tenant, "jobId": self.job_id, "taskId": self.task_id, "attempt": self.attempt}

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> AttemptRef:
        return cls(str(data["tenant"]), str(data["jobId"]), str(data["taskId"]), int(data["attempt"]))


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """`read_attempt_result`: what the agent's result.json says of the attempt, in the terms of its `completed`
    report (`found` False: there is none, or it is not this attempt's). Only the outcome travels: the output list
    stays in storage (the files API reads it), so a task with thousands of outputs keeps a small history."""

    found: bool
    exit_code: int | None = None
    failure: FileFailure | None = None
    output_count: int = 0
    output_bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        if not self.found:
            return {"found": False}
        return {
            "found": True,
            "exitCode": self.exit_code,
            "failure": None if self.failure is None else self.failure.to_dict(),
            "outputs": {"count": self.output_count, "bytes": self.output_bytes},
        }

    @classmethod
    def parse(cls, data: Any) -> AttemptResult:
        """Anything but a found result (an activity that answered nothing) reads as none."""
        if not isinstance(data, Mapping) or not data.get("found"):
            return cls(False)
        outputs = data.get("outputs") or {}
        return cls(
            True,
            optional_int(data, "exitCode"),
            FileFailure.from_dict(data.get("failure")),
            int(outputs.get("count", 0)),
            int(outputs.get("bytes", 0)),
        )

    @classmethod
    def from_result_json(cls, document: Any, attempt: int) -> AttemptResult:
        """The agent's result.json (version 1) for `attempt`; one that is unreadable, of another version or of
        another attempt counts as none, so the missing-result rule decides."""
        if not isinstance(document, Mapping) or document.get("version") != 1 or document.get("attempt") != attempt:
            return cls(False)
        exit_code, outputs, failure = document.get("exitCode"), document.get("outputs"), document.get("failure")
        if exit_code is not None and not (isinstance(exit_code, int) and not isinstance(exit_code, bool)):
            return cls(False)
        if not isinstance(outputs, list) or (failure is not None and FileFailure.from_dict(failure) is None):
            return cls(False)
        total = 0
        for item in outputs:
            size = item.get("size") if isinstance(item, Mapping) else None
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                return cls(False)
            total += size
        return cls(True, exit_code, FileFailure.from_dict(failure), len(outputs), total)
