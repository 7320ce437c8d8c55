"""The `jobprogress` entity's operations: init, begin, set, set_many, cancelled, cancel."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from acibatch.records import TaskState


@dataclass(frozen=True, slots=True)
class ProgressInit:
    """`init`: how many tasks the job has."""

    total: int

    def to_dict(self) -> dict[str, Any]:
        return {"total": self.total}

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> ProgressInit:
        return cls(int(data["total"]))


@dataclass(frozen=True, slots=True)
class CancelMark:
    """The answer to `begin` (which takes the bare task id) and to the read `cancelled`: whether the job was
    cancelled. A missing answer (an entity that was never written) reads as not cancelled."""

    cancelled: bool

    def to_dict(self) -> dict[str, Any]:
        return {"cancelled": self.cancelled}

    @classmethod
    def parse(cls, data: Any) -> CancelMark:
        return cls(bool(isinstance(data, Mapping) and data.get("cancelled")))


@dataclass(frozen=True, slots=True)
class TaskStateReport:
    """`set`: a task's live state."""

    task_id: str
    state: TaskState

    def to_dict(self) -> dict[str, Any]:
        return {"taskId": self.task_id, "state": str(self.state)}

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> TaskStateReport:
        return cls(str(data["taskId"]), TaskState(data["state"]))


@dataclass(frozen=True, slots=True)
class UnrunTasks:
    """`set_many`: a workflow's tasks that ended without running (Skipped), each with its reason."""

    task_ids: tuple[str, ...]
    state: TaskState
    reasons: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"taskIds": list(self.task_ids), "state": str(self.state), "reasons": list(self.reasons)}

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> UnrunTasks:
        return cls(tuple(str(item) for item in data["taskIds"]), TaskState(data["state"]), tuple(data["reasons"]))
