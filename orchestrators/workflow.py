"""The job orchestrator's path for a job with dependencies (or a task that can stop the job): a workflow.

One orchestration owns the readiness state (`acibatch.dag.Readiness`: one letter per task) and releases ready
tasks in batches ("releases") through the chunk orchestrator, which answers with each task's outcome as a small
value (`[index, state, dependencyAction, jobAction]`). A task whose upstream tasks blocked it ends Skipped with
its reason; the job ends when every task has ended.

History bound: a generation starts at most RELEASES_PER_GENERATION releases. Once it has, it starts no more,
waits until its releases have all answered (a quiet point: nothing outstanding, so no answer can be dropped by
the switch, see devhost/README.md) and continues as new carrying the letters, the ready tasks not yet
released and the release counter. A generation's history is therefore at most about
4 * RELEASES_PER_GENERATION events (a release's start and answer, each in its own episode) plus one per
SKIP_BATCH skipped tasks and a few fixed ones, whatever the job's size: 208 events measured for a 10,000-task
chain (tests/orchestrators/test_workflow.py holds it under 4 * RELEASES_PER_GENERATION + 40). A wide graph pays
for this with a dip in parallelism at each switch (the last releases of a generation drain before the next
generation starts any); a chain pays nothing (it is quiet after every task).

Stopping: a cancel request or the job timeout stops the job as in the chunk path (mark the progress entity
cancelled, tell every running task, wait for them); a task that ended with `jobAction: terminate`, or failed under
`onTaskFailure: terminateJob`, stops it the same way. Tasks not released yet end Cancelled (a cancel) or Skipped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any

import azure.durable_functions as df

from acibatch import durable_names as names
from acibatch.dag import Graph, Outcome, Readiness, outcome_of
from acibatch.messages.progress import ProgressInit, UnrunTasks
from acibatch.messages.tenant import JobUpdate
from acibatch.plan import JobInput, chunk_instance_id, chunk_size_for
from acibatch.records import JobState, TaskState
from acibatch.spec import JobSpec, TaskFailureAction
from orchestrators import calls
from orchestrators.calls import Steps
from orchestrators.job_end import finish_job, iso_now
from orchestrators.job_stop import stop_tasks

RELEASES_PER_GENERATION = 50
BLOCKED_SHOWN = 10  # blocked tasks whose blockedBy the job's custom status lists
SKIP_BATCH = 500  # task ids per progress-entity signal when many tasks are skipped at once
STATE_KEY = "workflow"  # where a continued generation's input carries its state, beside the JobInput fields

_STATE_OF_OUTCOME = {
    Outcome.SUCCEEDED: TaskState.SUCCEEDED,
    Outcome.SUCCEEDED_BLOCKS: TaskState.SUCCEEDED,
    Outcome.FAILED: TaskState.FAILED,
    Outcome.FAILED_SATISFIES: TaskState.FAILED,
    Outcome.CANCELLED: TaskState.CANCELLED,
    Outcome.SKIPPED: TaskState.SKIPPED,
}


@dataclass
class Carried:
    """What one generation hands the next (JSON: `to_dict` / `from_dict`)."""

    letters: str
    ready: list[int]  # released by the readiness state, not started yet
    releases: int  # release (chunk) numbers used so far: instance ids are never reused
    generation: int
    started_at: str
    deadline: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "letters": self.letters,
            "ready": self.ready,
            "releases": self.releases,
            "generation": self.generation,
            "startedAt": self.started_at,
            "deadline": self.deadline,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Carried:
        return cls(
            letters=str(data["letters"]),
            ready=[int(item) for item in data["ready"]],
            releases=int(data["releases"]),
            generation=int(data["generation"]),
            started_at=str(data["startedAt"]),
            deadline=data.get("deadline"),
        )


@dataclass
class Stop:
    """Why the job stopped early (None fields: it did not)."""

    error: str | None = None
    cancelled: bool = False
    pending_outcome: Outcome = Outcome.SKIPPED


@dataclass
class Workflow:
    context: df.DurableOrchestrationContext
    job: JobInput
    spec: JobSpec
    readiness: Readiness
    carried: Carried
    stop: Stop = field(default_factory=Stop)
    open: dict[Any, list[int]] = field(default_factory=dict)  # release task -> task indices
    started_here: int = 0

    def chunk_size(self) -> int:
        return chunk_size_for(self.readiness.graph.size)

    def launch(self) -> None:
        """Start releases for the ready tasks, while this generation's budget allows."""
        ready = self.carried.ready
        while ready and self.started_here < RELEASES_PER_GENERATION and self.stop.error is None:
            batch, self.carried.ready = ready[: self.chunk_size()], ready[self.chunk_size() :]
            ready = self.carried.ready
            spec = dict(self.job.spec)
            spec["tasks"] = [spec["tasks"][index] for index in batch]
            number = self.carried.releases
            self.carried.releases += 1
            self.started_here += 1
            child = self.context.call_sub_orchestrator(
                names.CHUNK_ORCHESTRATOR,
                {"job": {**self.job.to_dict(), "spec": spec}, "outcomes": True},
                chunk_instance_id(self.job.tenant, self.job.job_id, number),
            )
            self.open[child] = batch

    def heard(self, child: Any) -> list[tuple[int, str]]:
        """Apply a release's answer; returns the tasks it skipped, with reasons."""
        batch = self.open.pop(child)
        result = child.result
        if isinstance(result, dict) and isinstance(result.get("outcomes"), list):
            answers = [(int(i), str(state), dep, act) for i, state, dep, act in result["outcomes"]]
        else:  # cannot happen by design (the chunk settles every task); if it does, its tasks did not succeed
            answers = [(index, str(TaskState.FAILED), None, None) for index in batch]
        skipped: list[tuple[int, str]] = []
        for index, state, dependency_action, job_action in answers:
            ready, newly_skipped = self.readiness.complete(index, outcome_of(state, dependency_action))
            self.carried.ready.extend(ready)
            skipped.extend(newly_skipped)
            task_id = self.readiness.graph.ids[index]
            if self.stop.error is None and job_action == "terminate":
                self.stop = Stop(error=f"task {task_id} ended {state} with jobAction terminate; the job was stopped")
            elif (
                self.stop.error is None
                and state == str(TaskState.FAILED)
                and self.spec.on_task_failure is TaskFailureAction.TERMINATE_JOB
            ):
                self.stop = Stop(error=f"task {task_id} failed and onTaskFailure is terminateJob; the job was stopped")
        return skipped

    def report_ended(self, ended: Sequence[tuple[int, str | None]], state: TaskState) -> None:
        """Tell the progress entity about tasks that ended without running (with why, when it is theirs alone), a
        batch per signal."""
        ids = [self.readiness.graph.ids[index] for index, _ in ended]
        reasons = [reason or "" for _, reason in ended]
        for first in range(0, len(ids), SKIP_BATCH):
            batch = slice(first, first + SKIP_BATCH)
            calls.report_unrun(
                self.context, self.job.progress_key, UnrunTasks(tuple(ids[batch]), state, tuple(reasons[batch]))
            )

    def publish(self, phase: str) -> None:
        """The job's custom status: its phase, how many tasks wait for upstream tasks, and for the first
        BLOCKED_SHOWN of them what they wait for (bounded, so the status stays far under the 16 KB limit)."""
        waiting = (index for index, outcome in enumerate(self.readiness.outcomes) if outcome is Outcome.PENDING)
        shown = {
            self.readiness.graph.ids[index]: self.readiness.blocked_by(index)
            for index in islice(waiting, BLOCKED_SHOWN)
        }
        self.context.set_custom_status(
            {
                "phase": phase,
                "startedAt": self.carried.started_at,
                "generation": self.carried.generation,
                "released": self.carried.releases,
                "blocked": self.readiness.outcomes.count(Outcome.PENDING),
                "blockedBy": shown,
                **({"reason": self.stop.error} if self.stop.error else {}),
            }
        )

    def stopping(self) -> Steps[None]:
        """Stop every running task (as a cancel does) and end every task not released yet."""
        self.publish("cancelling")
        problem = yield from stop_tasks(self.context, self.job.progress_key, self.job.tenant, self.job.job_id)
        if problem is not None:
            self.stop.error = f"{self.stop.error} ({problem})"
        unreleased = [*self.readiness.skip_all_pending(self.stop.pending_outcome), *self.carried.ready]
        for index in self.carried.ready:
            self.readiness.outcomes[index] = self.stop.pending_outcome
        self.carried.ready = []
        ended_as = TaskState.CANCELLED if self.stop.pending_outcome is Outcome.CANCELLED else TaskState.SKIPPED
        # No reason per task: the job's own error says why, and 10,000 copies of it would bloat the entity's state.
        self.report_ended([(index, None) for index in unreleased], ended_as)

    def counts(self) -> dict[str, int]:
        counts: Counter[str] = Counter({str(state): 0 for state in TaskState})
        for outcome in self.readiness.outcomes:
            counts[str(_STATE_OF_OUTCOME.get(outcome, TaskState.FAILED))] += 1
        return dict(counts)


# The spec and graph of the jobs this worker replays lately. Every episode of a 10,000-task job would otherwise
# decode its spec and rebuild its graph (tens of milliseconds each); both are pure functions of the job's input,
# identified by its instance id and fingerprint, so a cached copy is what a rebuild would give (replay-safe).
_PARSED: dict[tuple[str, str], tuple[JobSpec, Graph]] = {}
PARSED_KEPT = 8


def parsed(job: JobInput) -> tuple[JobSpec, Graph]:
    key = (job.instance_id, job.fingerprint)
    found = _PARSED.get(key)
    if found is None:
        spec = job.job_spec()
        found = (spec, spec.graph())
        while len(_PARSED) >= PARSED_KEPT:
            _PARSED.pop(next(iter(_PARSED)))
        _PARSED[key] = found
    return found


def is_workflow(job: JobInput) -> bool:
    """Whether the job runs here; a cheap look at the stored spec's keys decides for the plain jobs."""
    stored = job.spec
    if not ({"dependsOn", "exitConditions", "onTaskFailure"} & set(stored)) and not any(
        "dependsOn" in task or "exitConditions" in task for task in stored.get("tasks", ())
    ):
        return False
    return parsed(job)[0].is_workflow


def _parse_iso(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def run_workflow(context: df.DurableOrchestrationContext, job: JobInput) -> Steps[dict[str, Any] | None]:
    stored = context.get_input().get(STATE_KEY)
    spec, graph = parsed(job)
    if stored is None:
        started_at = iso_now(context)
        deadline = None
        if spec.job_timeout_seconds is not None:
            moment = context.current_utc_datetime + timedelta(seconds=spec.job_timeout_seconds)
            deadline = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        readiness = Readiness.start(graph)
        ready = readiness.ready()
        for index in ready:
            readiness.release(index)
        carried = Carried(readiness.letters, ready, 0, 1, started_at, deadline)
        yield calls.init_progress(context, job.progress_key, ProgressInit(graph.size))
        calls.update_job(context, job.tenant, JobUpdate(job.job_id, str(JobState.RUNNING)))
    else:
        carried = Carried.from_dict(stored)
        readiness = Readiness.from_letters(graph, carried.letters)
    flow = Workflow(context, job, spec, readiness, carried)
    flow.publish("running")

    cancel_waiter = context.wait_for_external_event(names.EVENT_CANCEL)
    timeout = None
    if carried.deadline is not None:
        timeout = context.create_timer(_parse_iso(carried.deadline))
    flow.launch()
    while flow.open:
        causes = [] if flow.stop.error is not None else [cancel_waiter, *([timeout] if timeout is not None else [])]
        winner = yield context.task_any([*flow.open, *causes])
        if winner in flow.open:
            already_stopping = flow.stop.error is not None
            skipped = flow.heard(winner)
            flow.publish("running" if flow.stop.error is None else "cancelling")
            if skipped:
                flow.report_ended(skipped, TaskState.SKIPPED)
            if flow.stop.error is not None and not already_stopping:
                yield from flow.stopping()
            flow.launch()
            continue
        if winner is cancel_waiter:
            flow.stop = Stop(error="cancelled on request", cancelled=True, pending_outcome=Outcome.CANCELLED)
        else:
            flow.stop = Stop(error=f"the job ran longer than jobTimeoutSeconds={spec.job_timeout_seconds}")
        yield from flow.stopping()
    if timeout is not None and not timeout.is_completed:
        timeout.cancel()  # a fired timer must not be cancelled (the SDK raises)

    if flow.stop.error is None and flow.carried.ready:
        if cancel_waiter.is_completed:  # a cancel that arrived with the last answer is handled here, not dropped
            flow.stop = Stop(error="cancelled on request", cancelled=True, pending_outcome=Outcome.CANCELLED)
            yield from flow.stopping()
        else:
            # A quiet point with work left: nothing is outstanding, so no answer can be lost by continuing as new.
            flow.carried.letters = flow.readiness.letters
            flow.carried.generation += 1
            context.continue_as_new({**job.to_dict(), STATE_KEY: flow.carried.to_dict()})
            return None
    counts = flow.counts()
    return (
        yield from finish_job(
            context,
            job,
            spec,
            counts,
            cancelled=flow.stop.cancelled,
            error=flow.stop.error,
            started_at=carried.started_at,
            extra={"generations": carried.generation},
        )
    )
