"""What a task orchestration carries into its next generation when it continues as new.

Azure replays an orchestration's whole history on every episode (the Python worker has no extended sessions),
and a task adds a few events per poll, so a task that ran for hours would replay thousands of events per poll.
The task orchestrator therefore continues as new every WAITS_PER_GENERATION waits (polls, back-offs, queue
timers), carrying this checkpoint; a history then never holds more than one generation's events (the README
gives the bound). It also continues as new once more when it ends, so the final record sits in the input of a
last, one-episode generation and its parent (the chunk) receives only the outcome.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from acibatch.callbackevents import CallbackEvents, callback_events_of, events_field
from acibatch.plan import TaskInput
from acibatch.policy import AttemptState
from acibatch.records import TaskRecord

WAITS_PER_GENERATION = 40
HANDLED_KEPT = 16  # digests of the latest callback payloads handled, to recognise a repeat after a restart


class Phase(StrEnum):
    QUEUED = "queued"  # waiting for a capacity lease
    CREATE = "create"  # holding a lease: (re-)create the attempt's group
    WATCH = "watch"  # the group exists: wait for its callback or poll it


@dataclass(frozen=True)
class TaskCheckpoint:
    phase: Phase
    record: TaskRecord
    attempt: int
    priority: str
    attempt_state: AttemptState | None = None
    create_at: float = 0.0  # the attempt's reserved create slot (epoch seconds)
    deadline: str | None = None  # ISO time the attempt times out (WATCH)
    heard_from: int = 0
    handled: tuple[str, ...] = ()
    capacity_waits: int = 0
    generation: int = 1
    # A task run with the acibatch agent: the task's own succeeded/failed report of this attempt (a
    # `CallbackReport` dict), kept until the agent's report ends the attempt. Written only when there is one.
    user_report: Mapping[str, Any] | None = None
    # A task run with the acibatch agent whose command has ended: the ISO time its uploads time out (WATCH; later
    # than `deadline` when the command ended near it). Written only when there is one.
    upload_deadline: str | None = None
    callback_events: CallbackEvents = CallbackEvents.SHARED  # written only when per-attempt

    def to_dict(self) -> dict[str, Any]:
        state = self.attempt_state
        return {
            "phase": str(self.phase),
            "record": self.record.to_dict(),
            "attempt": self.attempt,
            "priority": self.priority,
            "attemptState": None
            if state is None
            else {
                "restartsInPlace": state.restarts_in_place,
                "transientErrors": state.transient_errors,
                "waits": state.waits,
            },
            "createAt": self.create_at,
            "deadline": self.deadline,
            "heardFrom": self.heard_from,
            "handled": list(self.handled[-HANDLED_KEPT:]),
            "capacityWaits": self.capacity_waits,
            "generation": self.generation,
            **({"userReport": dict(self.user_report)} if self.user_report is not None else {}),
            **({"uploadDeadline": self.upload_deadline} if self.upload_deadline is not None else {}),
            **events_field(self.callback_events),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], task: TaskInput) -> TaskCheckpoint:
        stored = data.get("attemptState")
        attempt, priority = int(data["attempt"]), str(data["priority"])
        state = None
        if stored is not None:
            state = replace(
                attempt_state(task, attempt, priority, TaskRecord.from_dict(data["record"]).platform_retries),
                restarts_in_place=int(stored["restartsInPlace"]),
                transient_errors=int(stored["transientErrors"]),
                waits=int(stored["waits"]),
            )
        return cls(
            phase=Phase(data["phase"]),
            record=TaskRecord.from_dict(data["record"]),
            attempt=attempt,
            priority=priority,
            attempt_state=state,
            create_at=float(data.get("createAt", 0.0)),
            deadline=data.get("deadline"),
            heard_from=int(data.get("heardFrom", 0)),
            handled=tuple(data.get("handled", ())),
            capacity_waits=int(data.get("capacityWaits", 0)),
            generation=int(data.get("generation", 1)),
            user_report=data.get("userReport"),
            upload_deadline=data.get("uploadDeadline"),
            callback_events=callback_events_of(data),
        )


def attempt_state(task: TaskInput, attempt: int, priority: str, platform_retries: int = 0) -> AttemptState:
    """A fresh attempt's policy state; `platform_retries` of the attempts so far did not count."""
    return AttemptState(
        attempt=attempt,
        max_attempts=task.max_attempts,
        priority=priority,
        spot_fallback=task.spot_fallback,
        on_success=task.on_success,
        on_failure=task.on_failure,
        seed=task.instance_id,
        exit_rules=task.exit_rules,
        platform_retries=platform_retries,
    )


@dataclass(frozen=True)
class TaskStart:
    """The task orchestration's input: the task, and where a continued generation resumes (or its final record)."""

    task: TaskInput
    resume: TaskCheckpoint | None = None
    final: TaskRecord | None = None
    # With `final`: the leases this task's releases handed on (`{"freedAt": ISO time, "to": [lease ids]}`), from
    # its last working generation; a diagnostic the bench reads for its dispatch latency.
    handovers: tuple[dict[str, Any], ...] = ()
    # A first generation's event names (`first_input`); a later one's are its checkpoint's.
    callback_events: CallbackEvents = CallbackEvents.SHARED

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"task": self.task.to_dict()}
        if self.resume is not None:
            data["resume"] = self.resume.to_dict()
        if self.final is not None:
            data["final"] = self.final.to_dict()
        if self.handovers:
            data["handovers"] = list(self.handovers)
        return data

    @classmethod
    def from_input(cls, data: Mapping[str, Any]) -> TaskStart:
        """A first generation's input is the bare `TaskInput` (as chunks start tasks); later ones are wrapped."""
        if "task" not in data:
            return cls(TaskInput.from_dict(data), callback_events=callback_events_of(data))
        task = TaskInput.from_dict(data["task"])
        resume = None if data.get("resume") is None else TaskCheckpoint.from_dict(data["resume"], task)
        final = data.get("final")
        return cls(
            task,
            resume,
            None if final is None else TaskRecord.from_dict(final),
            callback_events=CallbackEvents.SHARED if resume is None else resume.callback_events,
        )


def first_input(task: TaskInput, events: CallbackEvents) -> dict[str, Any]:
    """A new task orchestration's input, as a chunk starts it: the bare `TaskInput`, plus, for per-attempt names, the
    field that has it wait under them (an input may only gain fields: docs/versioning.md). `events` is what the job
    recorded at submission (`JobInput.callback_events`), never a setting read during a replay."""
    return {**task.to_dict(), **events_field(events)}
