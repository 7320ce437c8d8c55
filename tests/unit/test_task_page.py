"""A job read's page of tasks (`api.taskpage`) reads a task's orchestration only when its record can have changed:
never for a task the progress entity has not heard of, once for a task whose orchestration has Completed. Through
the real Durable SDK client over real HTTP on 127.0.0.1, against the recording status API of test_job_reads."""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df
import pytest

from acibatch.naming import job_instance_id, task_instance_id
from acibatch.records import JobProgress, TaskRecord, TaskState
from api.taskpage import ENTRY_OVERHEAD, FinishedRecords, page_records, read_task_ended
from tests.unit.test_job_reads import CREATED, StatusApi, api, client

__all__ = ["api", "client"]  # fixtures of tests.unit.test_job_reads
JOB = job_instance_id("acme", "big")


def put_task(api: StatusApi, task_id: str, runtime: str, record: dict[str, Any], created: str = CREATED) -> str:
    instance = task_instance_id("acme", "big", task_id)
    completed = runtime == "Completed"
    api.instances[instance] = {
        "name": "task", "instanceId": instance, "runtimeStatus": runtime, "createdTime": created,
        "customStatus": record, "output": {"id": task_id, "state": record["state"]} if completed else None,
        # A task's last generation holds its full record in its input (`acibatch.checkpoint`).
        "input": {"task": {"taskId": task_id}, "final": record} if completed else {"taskId": task_id},
    }  # fmt: skip
    return instance


def progress_of(states: dict[str, str], total: int = 6) -> JobProgress:
    return JobProgress.from_dict({"total": total, "cancelled": False, "states": states})


async def page(
    client: df.DurableOrchestrationClient,
    ids: list[str],
    progress: JobProgress,
    kept: FinishedRecords,
    created: str,
    ended: bool = False,
) -> list[TaskRecord]:
    read = lambda task_id: read_task_ended(client, "acme", "big", task_id, created)  # noqa: E731
    return await page_records(read, ids, progress, (JOB, created), kept, ended)


async def test_only_begun_unfinished_tasks_are_read_again(
    client: df.DurableOrchestrationClient, api: StatusApi
) -> None:
    done = put_task(api, "0", "Completed", {"id": "0", "state": "Succeeded", "attempts": 1, "exitCode": 0})
    running = put_task(api, "1", "Running", {"id": "1", "state": "Running", "attempts": 1})
    put_task(api, "2", "Running", {"id": "2", "state": "Queued"})  # started, not yet through `begin`
    progress, kept = progress_of({"0": "S", "1": "R"}), FinishedRecords()
    ids = ["0", "1", "2", "3"]
    first = await page(client, ids, progress, kept, CREATED)
    second = await page(client, ids, progress, kept, CREATED)
    assert first == second
    assert [(record.id, record.state) for record in first] == [
        ("0", TaskState.SUCCEEDED), ("1", TaskState.RUNNING), ("2", TaskState.QUEUED), ("3", TaskState.QUEUED)
    ]  # fmt: skip
    assert first[0].exit_code == 0 and first[2] == TaskRecord(id="2") and first[3] == TaskRecord(id="3")
    # The finished task was read once; the running one each time; the two not begun never. A page's reads run side
    # by side, so their order is not fixed.
    assert sorted(instance for instance, _ in api.requests) == sorted([done, running, running])


async def test_a_resubmitted_job_reads_its_tasks_afresh(client: df.DurableOrchestrationClient, api: StatusApi) -> None:
    done = put_task(api, "0", "Completed", {"id": "0", "state": "Succeeded", "attempts": 1})
    kept = FinishedRecords()
    await page(client, ["0"], progress_of({"0": "S"}), kept, CREATED)
    later = "2026-12-06T13:00:00Z"
    put_task(api, "0", "Completed", {"id": "0", "state": "Failed", "attempts": 2}, later)  # purged, submitted again
    again = await page(client, ["0"], progress_of({"0": "F"}), kept, later)
    assert again[0].state is TaskState.FAILED and [instance for instance, _ in api.requests] == [done, done]


async def test_a_restarted_job_never_keeps_its_earlier_runs_records(
    client: df.DurableOrchestrationClient, api: StatusApi
) -> None:
    # Restarted (or purged and resubmitted) while the earlier run's task orchestration still stands Completed: its
    # record is shown, as the status gives it, but read again each time, so the new run's record replaces it.
    restarted = "2026-12-06T13:00:00Z"
    earlier = put_task(api, "0", "Completed", {"id": "0", "state": "Succeeded", "attempts": 1})  # created before
    kept = FinishedRecords()
    for _ in range(2):
        [record] = await page(client, ["0"], progress_of({"0": "S"}), kept, restarted)
        assert record.state is TaskState.SUCCEEDED
    put_task(api, "0", "Completed", {"id": "0", "state": "Failed", "attempts": 3}, "2026-12-06T13:00:05Z")
    for _ in range(2):
        [record] = await page(client, ["0"], progress_of({"0": "S"}), kept, restarted)
        assert (record.state, record.attempts) == (TaskState.FAILED, 3)
    assert [instance for instance, _ in api.requests] == [earlier] * 3  # the new run's record was read once


async def test_an_ended_jobs_tasks_are_all_read(client: df.DurableOrchestrationClient, api: StatusApi) -> None:
    # A task orchestration that failed before its `begin` reached the progress entity has no letter there.
    failed = put_task(api, "5", "Failed", {"id": "5", "state": "Queued"})
    [running] = await page(client, ["5"], progress_of({}), FinishedRecords(), CREATED)
    assert running == TaskRecord(id="5") and api.requests == []  # while the job runs: not begun, not read
    [ended] = await page(client, ["5"], progress_of({}), FinishedRecords(), CREATED, ended=True)
    assert ended.state is TaskState.FAILED and [instance for instance, _ in api.requests] == [failed]


@pytest.mark.parametrize("ended", [False, True], ids=["job running", "job ended"])
async def test_a_task_its_job_ended_without_starting_is_never_read(
    client: df.DurableOrchestrationClient, api: StatusApi, ended: bool
) -> None:
    # A stopping job's chunk ended tasks 2 and 3 without starting them (the progress entity's `set_many`): they have
    # no orchestration, so a read could only be a 404. Task 1 began, and is read.
    progress = progress_of({"1": "R"})
    progress.end_unrun(["2", "3"], TaskState.CANCELLED, ["the job was cancelled before this task started"] * 2)
    running = put_task(api, "1", "Running", {"id": "1", "state": "Running", "attempts": 1})
    records = await page(client, ["1", "2", "3"], progress, FinishedRecords(), CREATED, ended=ended)
    assert records[1:] == [TaskRecord(id="2"), TaskRecord(id="3")]  # as a 404's read gives them (`unrun_view` shows
    assert [instance for instance, _ in api.requests] == [running]  # them Cancelled): only task 1 was read


async def test_a_failed_orchestration_is_read_every_time(client: df.DurableOrchestrationClient, api: StatusApi) -> None:
    # A Failed orchestration can still be rewound, so its record is not kept.
    failed = put_task(api, "4", "Failed", {"id": "4", "state": "Running"})
    kept = FinishedRecords()
    for _ in range(2):
        [record] = await page(client, ["4"], progress_of({"4": "R"}), kept, CREATED)
        assert record.state is TaskState.FAILED and record.error == "task orchestration failed"
    assert [instance for instance, _ in api.requests] == [failed, failed]


async def test_without_the_progress_entity_every_task_is_read(
    client: df.DurableOrchestrationClient, api: StatusApi
) -> None:
    running = put_task(api, "1", "Running", {"id": "1", "state": "Running", "attempts": 1})
    [record] = await page(client, ["1"], JobProgress.from_dict(None), FinishedRecords(), CREATED)
    assert record.state is TaskState.RUNNING and [instance for instance, _ in api.requests] == [running]


def test_kept_records_are_bounded() -> None:
    kept = FinishedRecords(kept=2)
    for task_id in "abc":
        kept.put(JOB, CREATED, task_id, TaskRecord(id=task_id))
    assert kept.get(JOB, CREATED, "a") is None and kept.get(JOB, CREATED, "c") == TaskRecord(id="c")


def test_kept_records_are_bounded_by_the_size_of_their_json_too() -> None:
    tail = "x" * 4000
    one = len(TaskRecord(id="a", log_tail=tail).model_dump_json()) + ENTRY_OVERHEAD
    kept = FinishedRecords(text_kept=2 * one + 10)
    for task_id in "abc":
        kept.put(JOB, CREATED, task_id, TaskRecord(id=task_id, log_tail=tail))
    assert kept.get(JOB, CREATED, "a") is None and kept.get(JOB, CREATED, "c") is not None
    assert kept.text <= 2 * one + 10
    kept.put(JOB, CREATED, "huge", TaskRecord(id="huge", log_tail="y" * (3 * one)))  # larger than the whole budget
    assert kept.get(JOB, CREATED, "huge") is None and kept.get(JOB, CREATED, "c") is not None
