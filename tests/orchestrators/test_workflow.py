"""The job orchestrator's workflow path through the real Durable SDK: releases in dependency order, skips with
reasons, a terminating task, a cancel, and a long chain whose history per generation stays bounded."""

from __future__ import annotations

import json
from typing import Any

import pytest

from acibatch import durable_names as names
from acibatch.plan import JobInput
from acibatch.records import TaskState
from acibatch.spec import parse_job_spec
from orchestrators.workflow import RELEASES_PER_GENERATION, SKIP_BATCH
from tests.orchestrators.actions import (
    Episode,
    Scheduled,
    activity_with_retry,
    call_entity,
    continue_as_new,
    signal_entity,
    sub_orchestration,
    wait_for,
)
from tests.orchestrators.conftest import TENANT, JobFactory
from tests.orchestrators.harness import Orchestration

PROGRESS = names.PROGRESS_ENTITY
DIAMOND = [
    {"id": "A"},
    {"id": "B", "dependsOn": {"taskIds": ["A"]}},
    {"id": "C", "dependsOn": {"taskIds": ["A"]}},
    {"id": "D", "dependsOn": {"taskIds": ["B", "C"]}},
]
# Bound on the events of one generation's history (see orchestrators/workflow.py and the README).
HISTORY_BOUND = 4 * RELEASES_PER_GENERATION + 40


def counts(**given: int) -> dict[str, int]:
    return {str(state): given.get(str(state), 0) for state in TaskState}


class Flow:
    def __init__(self, job: JobInput) -> None:
        self.job = job
        self.h = Orchestration(names.JOB_ORCHESTRATOR, job.to_dict(), job.instance_id)
        assert self.h.run().keys == [call_entity(PROGRESS, "init")]
        self.h.entity_answered(PROGRESS, "init", None)
        episode = self.h.run()
        assert episode.keys[0] == signal_entity(names.TENANT_ENTITY, "update_job")
        assert episode.keys[-1] == wait_for(names.EVENT_CANCEL)
        self.releases = self.new_releases(episode)

    @staticmethod
    def new_releases(episode: Episode) -> list[Scheduled]:
        return [s for s in episode.new if s.key == sub_orchestration(names.CHUNK_ORCHESTRATOR)]

    @staticmethod
    def ids(release: Scheduled) -> list[str]:
        assert release.input["outcomes"] is True
        return [task["id"] for task in release.input["job"]["spec"]["tasks"]]

    def answer(self, release: Scheduled, *outcomes: tuple[str, str, str | None, str | None]) -> None:
        index_of = {task["id"]: task["index"] for task in self.job.spec["tasks"]}
        self.h.sub_orchestration_completed(
            release, {"outcomes": [[index_of[task], state, dep, act] for task, state, dep, act in outcomes]}
        )


def ok(task: str) -> tuple[str, str, None, None]:
    return (task, "Succeeded", None, None)


def test_a_diamond_runs_in_order_and_a_failed_branch_skips_the_join(make_job: JobFactory) -> None:
    flow = Flow(diamond_job(make_job))
    (first,) = flow.releases
    assert flow.ids(first) == ["A"]
    assert flow.h.last is not None
    status = flow.h.last.custom_status
    assert status["blocked"] == 3 and status["blockedBy"] == {"B": ["A"], "C": ["A"], "D": ["B", "C"]}
    flow.answer(first, ok("A"))
    episode = flow.h.run()
    assert (episode.custom_status["blocked"], episode.custom_status["blockedBy"]) == (1, {"D": ["B", "C"]})
    (second,) = flow.new_releases(episode)
    assert flow.ids(second) == ["B", "C"]  # ready together: one release
    flow.answer(second, ("B", "Failed", None, None), ok("C"))
    episode = flow.h.run()
    assert episode.keys == [signal_entity(PROGRESS, "set_many"), signal_entity(names.TENANT_ENTITY, "update_job")]
    assert episode.new[0].input == {"taskIds": ["D"], "state": "Skipped", "reasons": ["upstream B Failed"]}
    assert episode.is_done and episode.error is None
    output = episode.output
    assert (output["state"], output["counts"]) == ("Failed", counts(Succeeded=2, Failed=1, Skipped=1))


def diamond_job(make_job: JobFactory, **extra: Any) -> JobInput:
    """conftest's factory always gives taskCount; a diamond needs a tasks list."""
    spec = {"jobId": "j1", "image": "registry.example.com/team/worker:1", "command": ["run"], "tasks": DIAMOND}
    parsed = parse_job_spec({**spec, **extra})
    stored = parsed.to_dict()
    stored["secureEnv"] = {}
    base = make_job()
    return JobInput(
        tenant=TENANT,
        job_id="j1",
        spec=stored,
        sealed_secure_env=None,
        fingerprint=parsed.fingerprint(),
        submitted_at=base.submitted_at,
        poll_seconds=base.poll_seconds,
    )


def test_an_exit_condition_that_blocks_skips_dependents_though_the_task_succeeded(make_job: JobFactory) -> None:
    flow = Flow(diamond_job(make_job))
    flow.answer(flow.releases[0], ("A", "Succeeded", "block", None))
    episode = flow.h.run()
    skipped = dict(zip(episode.new[0].input["taskIds"], episode.new[0].input["reasons"], strict=True))
    assert skipped.keys() == {"B", "C", "D"}
    assert skipped["B"] == skipped["C"] == "upstream A Succeeded"
    assert skipped["D"] in {"upstream B Skipped", "upstream C Skipped"}  # the first of its blocked upstream
    assert episode.output["state"] == "Succeeded"  # skipping was the task's own choice: nothing failed
    assert episode.output["counts"] == counts(Succeeded=1, Skipped=3)


def test_a_terminating_task_stops_the_job_and_skips_the_rest(make_job: JobFactory) -> None:
    flow = Flow(diamond_job(make_job, onTaskFailure="terminateJob"))
    flow.answer(flow.releases[0], ok("A"))
    (second,) = flow.new_releases(flow.h.run())
    flow.answer(second, ("B", "Failed", None, None), ("C", "Cancelled", None, None))
    episode = flow.h.run()
    assert episode.keys[0] == signal_entity(PROGRESS, "set_many")  # D skipped by B's failure
    assert episode.keys[1:] == [call_entity(PROGRESS, "cancel")]
    flow.h.entity_answered(PROGRESS, "cancel", None)
    episode = flow.h.run()
    assert episode.keys == [activity_with_retry(names.CANCEL_TASKS)]
    flow.h.activity_completed(names.CANCEL_TASKS, 0)
    episode = flow.h.run()
    assert episode.is_done
    assert episode.output["error"] == "task B failed and onTaskFailure is terminateJob; the job was stopped"
    assert episode.output["state"] == "Failed"
    assert episode.output["counts"] == counts(Succeeded=1, Failed=1, Cancelled=1, Skipped=1)


def test_a_cancel_ends_unreleased_tasks_cancelled(make_job: JobFactory) -> None:
    flow = Flow(diamond_job(make_job))
    flow.h.event(names.EVENT_CANCEL, {"requestedAt": "2026-01-05T09:01:00+00:00"})
    assert flow.h.run().keys == [call_entity(PROGRESS, "cancel")]
    flow.h.entity_answered(PROGRESS, "cancel", None)
    assert flow.h.run().keys == [activity_with_retry(names.CANCEL_TASKS)]
    flow.h.activity_completed(names.CANCEL_TASKS, 1)
    episode = flow.h.run()
    assert episode.keys == [signal_entity(PROGRESS, "set_many")]
    assert episode.new[0].input["state"] == "Cancelled" and episode.new[0].input["taskIds"] == ["B", "C", "D"]
    flow.answer(flow.releases[0], ("A", "Cancelled", None, None))
    done = flow.h.run()
    assert done.output["state"] == "Cancelled" and done.output["counts"] == counts(Cancelled=4)


def history_size(h: Orchestration) -> int:
    return len(h.history)


# The history a generation holds does not depend on the chain's length, only the carried input does (a letter per
# task); every episode decodes the whole job input, so the 10,000-task chain, the API's limit, is in
# `make test-all` and a 1,000-task one in the fast tier.
@pytest.mark.timeout(600)
@pytest.mark.parametrize("length", [1_000, pytest.param(10_000, marks=pytest.mark.long)])
def test_a_long_task_chain_is_accepted_and_each_generation_stays_bounded(make_job: JobFactory, length: int) -> None:
    """A sequential chain (10,000 tasks at most) runs one release at a time, so it continues as new every
    RELEASES_PER_GENERATION tasks; two generations and the start of a third are played here (the rest repeat
    them exactly: the second already starts from a carried input), and the carried input stays well under the
    1 MiB payload limit."""
    job = make_job(taskCount=length, dependsOn={"array": "job", "mode": "sequential"}, command=["run"])
    flow = Flow(job)
    largest, done = 0, 0
    for generation in range(2):
        for _ in range(RELEASES_PER_GENERATION):
            (release,) = flow.releases
            (task,) = flow.ids(release)
            assert task == str(done)  # strictly in chain order
            flow.answer(release, ok(task))
            done += 1
            episode = flow.h.run()
            largest = max(largest, history_size(flow.h))
            flow.releases = flow.new_releases(episode)
            if episode.finished:
                break
        assert episode.keys == [continue_as_new()]
        carried = episode.continued_with
        assert carried["workflow"]["generation"] == generation + 2
        assert carried["workflow"]["letters"].count("S") == done and carried["workflow"]["ready"] == [done]
        assert len(json.dumps(carried)) < 512 * 1024
        flow.h.next_generation()
        episode = flow.h.run()  # the next generation starts with the carried ready task, no init
        assert episode.keys[0] == sub_orchestration(names.CHUNK_ORCHESTRATOR)
        flow.releases = flow.new_releases(episode)
    assert largest <= HISTORY_BOUND, largest
    print(f"largest generation history of a {length}-task chain: {largest} events")  # bench/README.md's figure


def test_a_failure_early_in_a_long_chain_skips_the_rest_in_batches(make_job: JobFactory) -> None:
    job = make_job(taskCount=1_200, dependsOn={"array": "job", "mode": "sequential"}, command=["run"])
    flow = Flow(job)
    flow.answer(flow.releases[0], ("0", "Failed", None, None))
    episode = flow.h.run()
    skips = [s for s in episode.new if s.key == signal_entity(PROGRESS, "set_many")]
    assert [len(s.input["taskIds"]) for s in skips] == [SKIP_BATCH, SKIP_BATCH, 1_199 - 2 * SKIP_BATCH]
    assert skips[0].input["reasons"][:2] == ["upstream 0 Failed", "upstream 1 Skipped"]
    assert episode.output["counts"] == counts(Failed=1, Skipped=1_199)
