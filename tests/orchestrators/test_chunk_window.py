"""A chunk that starts its tasks in a window (`acibatch.plan.chunk_window`) through the real Durable SDK: at most
`window` tasks run at once, the next starts as one ends, a job that is stopping starts no more, and a history
recorded with a window replays on code that starts every task at once (an older worker in a rolling deploy)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from acibatch import durable_names as names
from acibatch.plan import JobInput, chunk_instance_id, chunk_window, task_inputs
from devhost import shim
from tests.golden.replay import replay
from tests.orchestrators.actions import Episode, flatten, signal_entity, sub_orchestration
from tests.orchestrators.conftest import TENANT, JobFactory
from tests.orchestrators.harness import Orchestration
from tests.orchestrators.test_job import Job

pytestmark = pytest.mark.timeout(10)

TASK = sub_orchestration(names.TASK_ORCHESTRATOR)


class Chunk(Orchestration):
    """A chunk orchestration whose every episode is also played through the extension's shim (`devhost.shim`): in
    Azure, actions the shim does not reach are not scheduled, however the SDK answered."""

    def run(self) -> Episode:
        episode = super().run()
        top = episode.state["actions"][0] if episode.state.get("actions") else []
        view = shim.progress(top, self.history, [scheduled.id for scheduled in self.scheduled])
        assert view.reached == len(list(flatten(top))), f"the shim stops at {view.waiting_for}: Azure would not go on"
        return episode


def chunk(job: JobInput, window: int | None, *, outcomes: bool = False) -> Chunk:
    data: dict[str, Any] = {"job": job.to_dict(), **({"window": window} if window else {})}
    if outcomes:
        data["outcomes"] = True
    return Chunk(names.CHUNK_ORCHESTRATOR, data, chunk_instance_id(TENANT, job.job_id, 0))


def ended(h: Orchestration, scheduled: Any, state: str) -> None:
    h.sub_orchestration_completed(scheduled, {"id": scheduled.input["taskId"], "state": state})


def test_the_window_keeps_two_regions_worth_of_groups_started_across_the_jobs_chunks() -> None:
    assert chunk_window(1_000, 0) is None  # an input from before the field: every task at once
    assert chunk_window(1_000, 50) == 4  # 32 chunks of 32: 2 x 50 groups over 32 chunks, rounded up
    assert chunk_window(10_000, 50) == 2  # 100 chunks: at least 2 each
    assert chunk_window(10, 100) == 200  # one chunk: all of its tasks at once


def test_a_chunk_with_a_window_starts_the_next_task_as_one_ends(make_job: JobFactory) -> None:
    job = make_job(taskCount=5)
    h = chunk(job, 2)
    first = h.run()
    assert first.keys == [TASK, TASK]
    ids = [task.instance_id for task in task_inputs(job, job.job_spec(), 0, 5)]
    assert [s.action["instanceId"] for s in first.new] == ids[:2]
    ended(h, first.new[1], "Succeeded")  # the second ends first: the third starts, the first still runs
    second = h.run()
    assert second.keys == [TASK] and second.new[0].action["instanceId"] == ids[2]
    ended(h, first.new[0], "Failed")
    ended(h, second.new[0], "Succeeded")  # two end in one episode: two start
    third = h.run()
    assert [s.action["instanceId"] for s in third.new] == ids[3:]
    for scheduled in third.new:
        ended(h, scheduled, "Succeeded")
    done = h.run()
    assert (done.is_done, done.output) == (True, {"Succeeded": 4, "Failed": 1})


def test_a_wave_starts_once_half_the_window_runs_and_a_task_of_the_last_wave_has_ended(make_job: JobFactory) -> None:
    job = make_job(taskCount=9)
    h = chunk(job, 4)
    first = h.run()
    assert len(first.new) == 4
    ended(h, first.new[0], "Succeeded")
    assert h.run().new == []  # 3 of 4 still run: more than half the window
    ended(h, first.new[1], "Succeeded")
    second = h.run()
    assert len(second.new) == 2  # half the window runs and the last wave was heard from: fill it again
    ended(h, first.new[2], "Succeeded")
    ended(h, first.new[3], "Succeeded")
    # Half the window runs, but neither task of the newest wave has ended: Azure's shim still waits for one of
    # them, so a wave yielded now would wait too (the Chunk harness fails any episode the shim cannot finish).
    assert h.run().new == []
    ended(h, second.new[1], "Succeeded")
    third = h.run()
    assert len(third.new) == 3
    for scheduled in [second.new[0], *third.new]:
        ended(h, scheduled, "Succeeded")
    done = h.run()  # all nine had started: the chunk ends
    assert (done.is_done, done.output) == (True, {"Succeeded": 9})


def test_outcomes_keep_task_order_whatever_order_tasks_end_in(make_job: JobFactory) -> None:
    job = make_job(taskCount=3)
    h = chunk(job, 1, outcomes=True)
    for state in ("Failed", "Succeeded", "Succeeded"):
        started = h.run()
        assert started.keys == [TASK]
        ended(h, started.new[0], state)
    done = h.run()
    indexes = [task.index for task in task_inputs(job, job.job_spec(), 0, 3)]
    assert done.output == {
        "outcomes": [[i, s, None, None] for i, s in zip(indexes, ["Failed", "Succeeded", "Succeeded"], strict=True)]
    }


def test_a_cancelled_task_stops_the_chunk_starting_more_and_the_rest_end_cancelled(make_job: JobFactory) -> None:
    job = make_job(taskCount=5)
    h = chunk(job, 2)
    first = h.run()
    ended(h, first.new[0], "Cancelled")  # the job's cancel reached a running task
    assert h.run().keys == []  # no new task: the job is stopping
    ended(h, first.new[1], "Succeeded")  # ended before the cancel reached it
    done = h.run()
    tasks = task_inputs(job, job.job_spec(), 0, 5)
    # The three it never started: told to the job's progress entity at once, and counted for the tenant.
    assert (
        done.keys
        == [signal_entity(names.PROGRESS_ENTITY, "set_many")]
        + [signal_entity(names.TENANT_ENTITY, "task_finished")] * 3
    )
    told = done.new[0].input
    assert told["taskIds"] == [task.task_id for task in tasks[2:]] and told["state"] == "Cancelled"
    assert told["reasons"] == ["the job was cancelled before this task started"] * 3
    assert [s.input for s in done.new[1:]] == [{"outcome": "Cancelled"}] * 3
    assert (done.is_done, done.output) == (True, {"Cancelled": 4, "Succeeded": 1})


def test_a_history_recorded_with_a_window_replays_on_code_that_starts_every_task(make_job: JobFactory) -> None:
    # An older worker ignores the window: replaying the history it matches the tasks started so far (started in
    # task order, numbered in that order) and starts the rest at once. No replay error strands the chunk.
    job = make_job(taskCount=5)
    h = chunk(job, 2)
    first = h.run()
    ended(h, first.new[0], "Succeeded")
    second = h.run()
    assert second.keys == [TASK]
    h.input_text = json.dumps({"job": job.to_dict()})  # as an older worker reads the input: no window
    older = h.run()
    assert (older.error, older.keys) == (None, [TASK, TASK])
    ids = [task.instance_id for task in task_inputs(job, job.job_spec(), 0, 5)]
    assert [s.action["instanceId"] for s in older.new] == ids[3:]
    for scheduled in [first.new[1], second.new[0], *older.new]:
        ended(h, scheduled, "Succeeded")
    done = h.run()
    assert (done.is_done, done.error, done.output) == (True, None, {"Succeeded": 5})


def recorded(h: Orchestration) -> dict[str, Any]:
    """The chunk's history as a golden generation, for the extension's replay check (`tests.golden.replay`)."""
    return {"instance": h.instance_id, "orchestrator": names.CHUNK_ORCHESTRATOR, "history": h.history}


def as_an_older_worker_reads_it(generation: dict[str, Any], job: JobInput) -> dict[str, Any]:
    """The generation with the chunk's input as an older build reads it: no window."""
    history = [
        {**event, "Input": json.dumps({"job": job.to_dict()})} if event.get("EventType") == 0 else event
        for event in generation["history"]
    ]  # EventType 0: ExecutionStarted, which carries the input
    return {**generation, "history": history}


@pytest.mark.parametrize("cancelled", [False, True])
def test_an_older_worker_replays_a_windowed_history_by_the_extensions_check(
    make_job: JobFactory, cancelled: bool
) -> None:
    job = make_job(taskCount=6)
    h = chunk(job, 2)
    first = h.run()
    ended(h, first.new[0], "Succeeded")
    second = h.run()
    assert len(second.new) == 1
    ended(h, first.new[1], "Cancelled" if cancelled else "Succeeded")
    h.run()
    older = replay(as_an_older_worker_reads_it(recorded(h), job))
    # Every task the history started is one the older code starts at the same sequence number; the rest it starts
    # at once, after them.
    assert older.verdict is None, older.verdict


def test_after_an_older_worker_ran_an_episode_the_windowed_code_cannot_replay(make_job: JobFactory) -> None:
    # Why BATCH_TASK_WAVES is off until every worker runs this build (docs/versioning.md): the older worker's
    # episode starts every remaining task, and the windowed code, replaying that history, has not started them at
    # that point, which DTFx refuses as a non-determinism.
    job = make_job(taskCount=5)
    h = chunk(job, 2)
    first = h.run()
    ended(h, first.new[0], "Succeeded")
    h.run()
    assert replay(recorded(h)).verdict is None  # windowed all along: the windowed code replays it
    windowed = h.input_text
    h.input_text = json.dumps({"job": job.to_dict()})  # an older worker takes the next episode
    ended(h, first.new[1], "Succeeded")
    assert len(h.run().new) == 2  # it starts the two tasks left
    h.input_text = windowed
    verdict = replay(recorded(h)).verdict
    assert verdict is not None and "would fail with a non-determinism error" in verdict


def test_the_job_passes_its_chunks_the_window_sized_from_the_region_it_recorded(make_job: JobFactory) -> None:
    recorded = Job(dataclasses.replace(make_job(taskCount=30), region_groups=5))
    assert [s.input.get("window") for s in recorded.chunks] == [chunk_window(30, 5)] * 3
    older = Job(make_job(taskCount=30))  # an input from before the field: no window, chunks as they were
    assert all("window" not in s.input for s in older.chunks)
