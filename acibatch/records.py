"""Task and job progress records: the states the API reports and how a job's state follows from its tasks.

The task orchestrator publishes `TaskRecord.live_status()` as its custom status (live view) and returns the
whole record as its output. The Durable extension fails an orchestration whose custom status is over 16 KB in
UTF-16, so the live view leaves out the log tail and the result (both only exist once the task ends), shortens
the error and carries the latest progress report only while it is small; the output has all of them. The
per-job progress entity keeps only one state letter per task (`JobProgress`), so live counts for a 10,000-task
job stay cheap to store and to read.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, ClassVar

from pydantic import ConfigDict, Field

from acibatch.models.base import StoredModel


class TaskState(StrEnum):
    QUEUED = "Queued"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"
    # A job with dependencies: a task that can never run (an upstream task blocked it, or the job stopped first)
    # ends Skipped; one still waiting for upstream tasks is Blocked (the API derives it; nothing stores it).
    SKIPPED = "Skipped"
    BLOCKED = "Blocked"

    @property
    def terminal(self) -> bool:
        return self in (TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED, TaskState.SKIPPED)


class FailureCategory(StrEnum):
    """Azure Batch's names for a task that failed around its command rather than by its exit code."""

    PRE_PROCESSING_ERROR = "preProcessingError"  # a resource file could not be staged in
    FILE_UPLOAD_ERROR = "fileUploadError"  # an output file could not be uploaded


# The live view's budget (`TaskRecord.live_status`), in the extension's measure: compact JSON in UTF-16. A
# progress report over its share is shown as PROGRESS_OMITTED until the task ends; ids, states and times take
# well under 2 KB, so the whole view stays below the extension's 16 KB.
LIVE_PROGRESS_MAX_UTF16 = 8 * 1024
LIVE_ERROR_MAX_CHARS = 1000
LIVE_STATUS_MAX_UTF16 = 16 * 1024
PROGRESS_OMITTED = "the latest progress report is over 4 KiB; it is shown once the task ends"


def utf16_size(value: Any) -> int:
    """Bytes of `value` as compact JSON in UTF-16, the measure the Durable extension applies to custom status."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-16-le"))


# Job states use the same five words; a separate alias keeps call sites readable.
JobState = TaskState
JOB_STATES = (TaskState.QUEUED, TaskState.RUNNING, TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED)

STATE_LETTERS = {
    TaskState.QUEUED: "Q",
    TaskState.RUNNING: "R",
    TaskState.SUCCEEDED: "S",
    TaskState.FAILED: "F",
    TaskState.CANCELLED: "C",
    TaskState.SKIPPED: "K",
    TaskState.BLOCKED: "B",
}
_FROM_LETTER = {letter: state for state, letter in STATE_LETTERS.items()}


class TaskRecord(StoredModel):
    """One task as the API shows it. `attempt` is the attempt whose callback token is currently valid."""

    INTERNAL: ClassVar[tuple[str, ...]] = ("attempt", "logTail")  # left out of the API's view (`public`)
    # Written only when set: records of tasks that move no files keep the JSON (and history) they had before.
    OMIT_WHEN_DEFAULT = frozenset({"failureCategory"})

    id: str
    state: TaskState = TaskState.QUEUED
    attempts: int = 0
    attempt: int = 0
    exit_code: int | None = None
    group_name: str | None = None
    started_at: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    finished_at: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    error: str | None = Field(
        default=None,
        description="the last error the task met: why it failed or was cancelled, or on a Succeeded task why an "
        "earlier attempt or create did not succeed",
    )
    result: Any = Field(default=None, description="the small JSON the task reported")
    progress: Any = Field(
        default=None,
        description="the last progress the task reported; while the task runs, a report over 4 KiB shows as "
        '{"omitted": "..."} (the live view is capped), and in full once the task ends',
    )
    log_tail: str | None = None
    # While Queued: what the task waits for (capacity, create rate, quota).
    pending_reason: str | None = Field(
        default=None,
        description="while Queued, what the task waits for: the tenant's quota, regional capacity, the fair queue, "
        "the create rate (ACI's create limits or ARM's Retry-After), an ACI or Spot quota",
    )
    platform_retries: int = Field(
        default=0,
        description="attempts started again after a platform failure (eviction, lost group); not counted against "
        "maxAttempts",
    )
    # An exit condition's dependencyAction for the attempt that ended it, and its jobAction ("terminate").
    dependency_action: str | None = Field(default=None, json_schema_extra={"enum": ["satisfy", "block", None]})
    job_action: str | None = Field(default=None, json_schema_extra={"enum": ["none", "terminate", None]})
    blocked_by: tuple[str, ...] = Field(
        default=(), description="Blocked: the first few upstream tasks that have not ended (the API fills it)"
    )
    failure_category: FailureCategory | None = Field(
        default=None,
        description="Failed around the command: preProcessingError (a resource file could not be downloaded) or "
        "fileUploadError (an output file could not be uploaded); `error` names the file",
    )

    def live_status(self) -> dict[str, Any]:
        """The record as custom status: at most LIVE_STATUS_MAX_UTF16 bytes however large the task's reports."""
        data = self.to_dict()
        data.pop("logTail")
        data.pop("result")
        if self.error is not None and len(self.error) > LIVE_ERROR_MAX_CHARS:
            data["error"] = self.error[: LIVE_ERROR_MAX_CHARS - 1] + "…"
        if self.progress is not None and utf16_size(self.progress) > LIVE_PROGRESS_MAX_UTF16:
            data["progress"] = {"omitted": PROGRESS_OMITTED}
        return data

    def public(self) -> dict[str, Any]:
        """The task as listed by `GET /api/jobs/{jobId}` (no internal fields, no log tail)."""
        data = self.to_dict()
        for internal in self.INTERNAL:
            data.pop(internal)
        return data

    def with_(self, **changes: Any) -> TaskRecord:
        return self.model_copy(update=changes)


class JobProgress(StoredModel):
    """Live per-job counters held by the `jobprogress` entity: one state letter per task that has reported."""

    model_config = ConfigDict(frozen=False)  # the entity applies each operation to it in place
    OMIT_WHEN_DEFAULT = frozenset({"reasons"})  # written only for jobs with such tasks, as before it existed

    total: int = 0
    cancelled: bool = False
    states: dict[str, str] = Field(default_factory=dict)
    # Why a task ended without running (Skipped: "upstream <id> <state>"), only for such tasks.
    reasons: dict[str, str] = Field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> JobProgress:
        return cls.model_validate(data) if data else cls()

    def stored_json(self) -> dict[str, Any]:
        """`to_dict()` built directly (same keys, order and values): the entity stores its state after every batch,
        and pydantic's dump copies every task's letter, milliseconds for a 10,000-task job. The dicts are shared,
        not copied: encode the result at once."""
        data: dict[str, Any] = {"total": self.total, "cancelled": self.cancelled, "states": self.states}
        if self.reasons:  # OMIT_WHEN_DEFAULT
            data["reasons"] = self.reasons
        return data

    def set_task(self, task_id: str, state: TaskState) -> None:
        # A late or replayed update must never move a finished task back to an earlier state.
        current = self.states.get(task_id)
        if current is not None and _FROM_LETTER[current].terminal:
            return
        self.states[task_id] = STATE_LETTERS[state]

    def end_unrun(self, task_ids: list[str], state: TaskState, reasons: list[str]) -> None:
        """Tasks that ended without running (Skipped, or Cancelled before release), each with why."""
        for task_id, reason in zip(task_ids, reasons, strict=False):
            current = self.states.get(task_id)
            if current is not None and _FROM_LETTER[current].terminal:
                continue
            self.states[task_id] = STATE_LETTERS[state]
            if reason:
                self.reasons[task_id] = reason

    def counts(self) -> dict[str, int]:
        counts = {str(state): 0 for state in TaskState}
        # Tallied by letter first: the API counts a 10,000-task job's letters on every read of it.
        for letter, number in Counter(self.states.values()).items():
            counts[str(_FROM_LETTER[letter])] += number
        reported_queued = counts[str(TaskState.QUEUED)]
        counts[str(TaskState.QUEUED)] = reported_queued + max(0, self.total - len(self.states))
        return counts

    def has_begun(self, task_id: str) -> bool:
        """Whether the task has reported here: it calls `begin` before it publishes anything of its own."""
        return task_id in self.states

    def task_state(self, task_id: str) -> TaskState:
        letter = self.states.get(task_id)
        return TaskState.QUEUED if letter is None else _FROM_LETTER[letter]

    def ended_unrun(self, task_id: str) -> tuple[TaskState, str | None] | None:
        """How a task whose own record still reads Queued has ended, as this entity has it (with why, when the job
        ended it without starting it and gave it a reason of its own), or None while it has not."""
        state = self.task_state(task_id)
        return (state, self.reasons.get(task_id)) if state.terminal else None


def job_state_from_counts(counts: Mapping[str, int], *, finished: bool, cancelled: bool) -> JobState:
    """A job's state: Queued until a task runs, then Running; once finished, Cancelled / Failed / Succeeded.

    A job whose tasks all succeeded is Succeeded; any failed task makes it Failed; a cancelled job whose
    tasks were stopped is Cancelled even if some tasks had finished before the cancel. Skipped tasks do not fail
    a job by themselves: the task that blocked them did (or its exit condition chose to block and succeed).
    """
    if finished:
        if cancelled:
            return JobState.CANCELLED
        if counts.get(str(TaskState.FAILED), 0) or counts.get(str(TaskState.CANCELLED), 0):
            return JobState.FAILED
        return JobState.SUCCEEDED
    waiting = (str(TaskState.QUEUED), str(TaskState.BLOCKED))
    started = sum(n for state, n in counts.items() if state not in waiting)
    return JobState.RUNNING if started else JobState.QUEUED
