"""Job orchestrator and its chunk orchestrators: fan a job out to one task orchestration per task.

The job starts one chunk per ~sqrt(n) tasks (10 to 100) and each chunk starts its tasks, so every history grows
with about sqrt(n), not n (the SDK replays a whole history on each episode). The job waits for every chunk,
a cancel request or its own timeout; on cancel or timeout it tells every task to stop and still waits for
them, so it never finishes while a container group of its own is alive.

A failed child never fails its parent: chunks and the job wait for every child whatever its outcome (`settle`),
count a failed task orchestration as a Failed task, and still aggregate, notify and finish. A task hands its
chunk only its outcome (its full record stays with the task), so a chunk's history stays small.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import azure.durable_functions as df

from acibatch import durable_names as names
from acibatch.checkpoint import first_input
from acibatch.messages.progress import ProgressInit, TaskStateReport, UnrunTasks
from acibatch.messages.tenant import JobUpdate, TaskFinished
from acibatch.plan import JobInput, TaskInput, chunk_instance_id, chunk_ranges, chunk_window, task_inputs
from acibatch.records import JobState, TaskState
from acibatch.spec import JobSpec
from orchestrators import bp, calls
from orchestrators.calls import Steps
from orchestrators.inputmemo import InputMemo
from orchestrators.job_end import finish_job
from orchestrators.job_stop import stop_tasks
from orchestrators.task import CANCELLED_BEFORE_START
from orchestrators.workflow import is_workflow, run_workflow


@dataclass(frozen=True)
class JobPlan:
    """A job orchestration's input, parsed: the job, and its spec when first asked for (a workflow parses its own)."""

    job: JobInput

    @functools.cached_property
    def spec(self) -> JobSpec:
        return self.job.job_spec()


@dataclass(frozen=True)
class ChunkPlan:
    """A chunk orchestration's input, parsed: its job and its tasks' inputs, and whether the caller wants each
    task's outcome."""

    job: JobInput
    tasks: tuple[TaskInput, ...]
    outcomes: bool
    window: int | None = None  # how many of its tasks run at once (`acibatch.plan.chunk_window`); None: all

    @classmethod
    def from_input(cls, data: Mapping[str, Any]) -> ChunkPlan:
        job = JobInput.from_dict(data["job"])
        spec = job.job_spec()
        window = data.get("window")
        tasks = tuple(task_inputs(job, spec, 0, len(spec.tasks)))
        return cls(job, tasks, bool(data.get("outcomes")), int(window) if window else None)


# Every episode replays from the start: each input (the job's holds every task of the job) is parsed once per worker.
JOB_PLANS = InputMemo(lambda data: JobPlan(JobInput.from_dict(data)))
CHUNK_PLANS = InputMemo(ChunkPlan.from_input)


def _slice_spec(spec: dict[str, Any], first: int, count: int) -> dict[str, Any]:
    return {**spec, "tasks": spec["tasks"][first : first + count]}


def settle(context: df.DurableOrchestrationContext, children: list[Any]) -> Steps[list[Any]]:
    """Wait for every child, in any order; returns each one's result, or its exception when it failed.

    `task_all` fails on the first failed child and drops the rest; `task_any` completes with whichever child
    finished, failed or not, so waiting on the ones still open until none is left hears every outcome."""
    open_children = list(children)
    while open_children:
        finished = yield context.task_any(open_children)
        open_children.remove(finished)
    return [child.result for child in children]


@bp.orchestration_trigger(context_name="context", orchestration=names.JOB_ORCHESTRATOR)
def job_orchestrator(context: df.DurableOrchestrationContext) -> Steps[dict[str, Any] | None]:
    plan = JOB_PLANS(context)
    job = plan.job
    if is_workflow(job):
        # Dependencies or a task that can stop the job: one orchestrator owns the readiness state (a job without
        # them keeps the chunk fan-out below, unchanged).
        return (yield from run_workflow(context, job))
    spec = plan.spec
    started_at = context.current_utc_datetime.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    yield calls.init_progress(context, job.progress_key, ProgressInit(len(spec.tasks)))
    calls.update_job(context, job.tenant, JobUpdate(job.job_id, str(JobState.RUNNING)))
    context.set_custom_status({"phase": "running", "startedAt": started_at})

    spec_dict = dict(job.spec)
    ranges = chunk_ranges(len(spec.tasks))
    window = chunk_window(len(spec.tasks), job.region_groups)
    chunks = [
        context.call_sub_orchestrator(
            names.CHUNK_ORCHESTRATOR,
            {
                "job": {**job.to_dict(), "spec": _slice_spec(spec_dict, first, count)},
                **({"window": window} if window is not None else {}),
            },
            chunk_instance_id(job.tenant, job.job_id, number),
        )
        for number, (first, count) in enumerate(ranges)
    ]
    cancel_waiter = context.wait_for_external_event(names.EVENT_CANCEL)
    timeout = None
    if spec.job_timeout_seconds is not None:
        timeout = context.create_timer(context.current_utc_datetime + timedelta(seconds=spec.job_timeout_seconds))

    # The first cause to win decides how the job ends. Once a cancel or the timeout has won, the job is already
    # stopping every task, so a later cause changes no task's outcome and is not reported: cancel then timeout
    # ends Cancelled ("cancelled on request", what the user asked for), timeout then cancel ends Failed with the
    # timeout error (the job had already run out of time when the user asked).
    open_chunks = list(chunks)
    cancelled, error = False, None
    while open_chunks:
        causes = [] if error is not None else [cancel_waiter, *([timeout] if timeout is not None else [])]
        winner = yield context.task_any([*open_chunks, *causes])
        if winner in open_chunks:
            open_chunks.remove(winner)
            continue
        cancelled = winner is cancel_waiter
        error = (
            "cancelled on request"
            if cancelled
            else f"the job ran longer than jobTimeoutSeconds={spec.job_timeout_seconds}"
        )
        context.set_custom_status({"phase": "cancelling", "startedAt": started_at, "reason": error})
        stop_error = yield from stop_tasks(context, job.progress_key, job.tenant, job.job_id)
        if stop_error is not None:
            error = f"{error} ({stop_error})"
    # The timeout may have fired meanwhile (it won, or it passed while the job drained after a cancel). The SDK
    # refuses to cancel a completed timer: it raises, and that would fail the orchestration after its tasks had
    # stopped. A timer that has fired needs no cancelling.
    if timeout is not None and not timeout.is_completed:
        timeout.cancel()

    counts: Counter[str] = Counter({str(state): 0 for state in TaskState})
    for (_, count), chunk in zip(ranges, chunks, strict=True):
        if isinstance(chunk.result, Exception):  # cannot happen by design; if it does, its tasks did not succeed
            counts[str(TaskState.FAILED)] += count
        else:
            counts.update(chunk.result)
    # The timeout fired, but every task had succeeded before the stop reached it: the timeout changed no outcome,
    # so (as above) `finish_job` does not report it, rather than a Succeeded job carrying an error.
    return (yield from finish_job(context, job, spec, counts, cancelled=cancelled, error=error, started_at=started_at))


def run_tasks(context: df.DurableOrchestrationContext, plan: ChunkPlan) -> Steps[list[Any]]:
    """Run the chunk's tasks; returns each one's outcome (or its exception) in task order.

    Without a window every task starts at once. With one, tasks start in waves and at most `window` of them have
    begun and not ended. A new wave fills the window once no more than half of it is running and a task of the
    last wave has ended. The second condition is Azure's: the extension's out-of-process shim awaits each yielded
    action in order, and a `task_any` that starts new tasks is sent as an action holding only those (its other
    tasks were sent before), so the shim waits for one of *them* before it schedules anything the orchestrator
    yields later. A wave started before one of the last wave's tasks ended would wait for that task in Azure,
    however many others had ended (`devhost/shim.py` models this; tests/orchestrators/test_chunk_window.py
    checks the chunk against it).

    Once a task ends Cancelled the job is stopping (only a job's cancel, timeout or terminate cancels a task,
    through its progress entity's cancel mark, which every task started later would see first), so the chunk
    starts no more: the tasks it had not started end Cancelled here, told to the job's progress entity and the
    tenant as each task would have told them."""
    events = plan.job.callback_events  # what the job recorded at submission, never a setting read during a replay

    def start(task: TaskInput) -> Any:
        return context.call_sub_orchestrator(names.TASK_ORCHESTRATOR, first_input(task, events), task.instance_id)

    tasks, window = plan.tasks, plan.window
    if window is None:
        return (yield from settle(context, [start(task) for task in tasks]))
    outcomes: list[Any] = [None] * len(tasks)
    running: dict[Any, int] = {}
    last_wave: set[Any] = set()
    started, stopping, heard_from_last_wave = 0, False, True
    while running or (started < len(tasks) and not stopping):
        if not stopping and started < len(tasks) and heard_from_last_wave and len(running) <= window // 2:
            last_wave, heard_from_last_wave = set(), False
            while started < len(tasks) and len(running) < window:
                child = start(tasks[started])
                running[child] = started
                last_wave.add(child)
                started += 1
        ended = yield context.task_any(list(running))
        outcomes[running.pop(ended)] = result = ended.result
        heard_from_last_wave = heard_from_last_wave or ended in last_wave
        stopping = stopping or (isinstance(result, dict) and result.get("state") == TaskState.CANCELLED)
    unstarted = tasks[started:]
    if unstarted:
        ids = tuple(task.task_id for task in unstarted)
        calls.report_unrun(
            context, plan.job.progress_key, UnrunTasks(ids, TaskState.CANCELLED, (CANCELLED_BEFORE_START,) * len(ids))
        )
        for position, task in enumerate(unstarted, start=started):
            outcomes[position] = {"id": task.task_id, "state": str(TaskState.CANCELLED)}
            calls.task_finished(context, plan.job.tenant, TaskFinished(TaskState.CANCELLED))
    return outcomes


@bp.orchestration_trigger(context_name="context", orchestration=names.CHUNK_ORCHESTRATOR)
def chunk_orchestrator(context: df.DurableOrchestrationContext) -> Steps[dict[str, Any]]:
    """Run a slice of the job's tasks; returns per-state counts, or with `"outcomes": true` (a workflow's release)
    each task's `[index, state, dependencyAction, jobAction]` so the workflow can update its readiness."""
    plan = CHUNK_PLANS(context)
    job, tasks = plan.job, plan.tasks
    outcomes = yield from run_tasks(context, plan)
    states: Counter[str] = Counter()
    each: list[list[Any]] = []
    for task, outcome in zip(tasks, outcomes, strict=True):
        if isinstance(outcome, dict) and "state" in outcome:
            states[str(outcome["state"])] += 1
            each.append([task.index, str(outcome["state"]), outcome.get("dependencyAction"), outcome.get("jobAction")])
            continue
        # The task orchestration itself failed (the host failed it, or a bug escaped it): the task failed, and
        # the job's live counts must say so (its own report never came).
        states[str(TaskState.FAILED)] += 1
        each.append([task.index, str(TaskState.FAILED), None, None])
        calls.report_task_state(context, job.progress_key, TaskStateReport(task.task_id, TaskState.FAILED))
    if plan.outcomes:
        return {"outcomes": each}
    return dict(states)
