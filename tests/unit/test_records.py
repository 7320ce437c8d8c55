"""Task records, live job progress and the job state rule."""

import json

import pytest

from acibatch.records import (
    LIVE_ERROR_MAX_CHARS,
    PROGRESS_OMITTED,
    FailureCategory,
    JobProgress,
    JobState,
    TaskRecord,
    TaskState,
    job_state_from_counts,
)


def test_task_record_round_trips_and_public_view_hides_internal_fields() -> None:
    record = TaskRecord(
        id="t1",
        state=TaskState.FAILED,
        attempts=3,
        attempt=4,
        exit_code=2,
        group_name="g",
        started_at="a",
        finished_at="b",
        error="boom",
        result={"x": 1},
        progress={"percent": 40},
        log_tail="tail",
        pending_reason="tenant quota: 2 of 2 container groups in use",
        platform_retries=1,
        dependency_action="block",
        job_action="terminate",
        blocked_by=("a", "b"),
        failure_category=FailureCategory.FILE_UPLOAD_ERROR,
    )
    # Every field is off its default, so a field the round trip loses or renames fails the comparison.
    assert all(getattr(record, name) != field.get_default() for name, field in TaskRecord.model_fields.items())
    assert TaskRecord.from_dict(record.to_dict()) == record
    assert TaskRecord.from_dict(json.loads(json.dumps(record.to_dict()))) == record
    public = record.public()
    assert set(public) == {
        "id",
        "state",
        "attempts",
        "exitCode",
        "groupName",
        "startedAt",
        "finishedAt",
        "error",
        "pendingReason",
        "result",
        "progress",
        "platformRetries",
        "dependencyAction",
        "jobAction",
        "blockedBy",
        "failureCategory",
    }
    assert public["state"] == "Failed"
    assert public["failureCategory"] == "fileUploadError"


def test_a_record_without_a_failure_category_keeps_its_json_as_before() -> None:
    # Records of tasks that move no files (and every golden history) must not gain a key.
    record = TaskRecord(id="t1", state=TaskState.FAILED, error="boom")
    assert "failureCategory" not in record.to_dict()
    assert "failureCategory" not in record.live_status()
    failed = record.with_(failure_category=FailureCategory.PRE_PROCESSING_ERROR)
    assert failed.live_status()["failureCategory"] == "preProcessingError"
    assert TaskRecord.from_dict(failed.to_dict()).failure_category is FailureCategory.PRE_PROCESSING_ERROR


def test_progress_counts_tasks_not_yet_reported_as_queued() -> None:
    progress = JobProgress(total=5)
    progress.set_task("a", TaskState.RUNNING)
    progress.set_task("b", TaskState.SUCCEEDED)
    assert progress.counts() == {
        "Queued": 3,
        "Running": 1,
        "Succeeded": 1,
        "Failed": 0,
        "Cancelled": 0,
        "Skipped": 0,
        "Blocked": 0,
    }


def test_progress_never_moves_a_finished_task_back() -> None:
    progress = JobProgress(total=1)
    progress.set_task("a", TaskState.SUCCEEDED)
    progress.set_task("a", TaskState.RUNNING)
    assert progress.task_state("a") is TaskState.SUCCEEDED
    assert progress.task_state("unknown") is TaskState.QUEUED


def test_progress_round_trips() -> None:
    progress = JobProgress(total=3, cancelled=False, states={"a": "R"})
    progress.set_task("b", TaskState.SUCCEEDED)
    progress.end_unrun(["c"], TaskState.SKIPPED, ["upstream b Failed"])
    progress.cancelled = True
    assert progress.to_dict() == {
        "total": 3,
        "cancelled": True,
        "states": {"a": "R", "b": "S", "c": "K"},
        "reasons": {"c": "upstream b Failed"},
    }
    assert JobProgress.from_dict(json.loads(json.dumps(progress.to_dict()))) == progress
    assert JobProgress.from_dict(None) == JobProgress()
    assert "reasons" not in JobProgress(total=1).to_dict()  # written only once a task has one


def test_the_progress_entitys_stored_json_is_to_dicts_to_the_byte() -> None:
    """The entity stores `stored_json()`; readers (the API, an older worker) expect exactly `to_dict()`'s JSON."""
    assert set(JobProgress.model_fields) == {"total", "cancelled", "states", "reasons"}, "a new field: add it there"
    fresh = JobProgress()
    reported = JobProgress(total=3, states={"a": "R", "b": "S"})
    unrun = JobProgress(total=3, cancelled=True)
    unrun.end_unrun(["c", "d"], TaskState.SKIPPED, ["upstream b Failed", ""])
    for progress in (fresh, reported, unrun):
        assert json.dumps(progress.stored_json()) == json.dumps(progress.to_dict())
        assert JobProgress.from_dict(progress.stored_json()) == progress


@pytest.mark.parametrize(
    ("counts", "finished", "cancelled", "expected"),
    [
        ({"Queued": 3}, False, False, JobState.QUEUED),
        ({"Queued": 2, "Running": 1}, False, False, JobState.RUNNING),
        ({"Queued": 2, "Succeeded": 1}, False, False, JobState.RUNNING),
        ({"Succeeded": 3}, True, False, JobState.SUCCEEDED),
        ({"Succeeded": 2, "Failed": 1}, True, False, JobState.FAILED),
        ({"Succeeded": 2, "Cancelled": 1}, True, False, JobState.FAILED),
        ({"Succeeded": 2, "Cancelled": 1}, True, True, JobState.CANCELLED),
    ],
)
def test_job_state(counts: dict[str, int], finished: bool, cancelled: bool, expected: JobState) -> None:
    assert job_state_from_counts(counts, finished=finished, cancelled=cancelled) is expected


def test_the_live_status_stays_within_the_extensions_limit_however_much_a_task_reports() -> None:
    from devhost.payloadlimits import custom_status_error

    record = TaskRecord(
        id="t" * 63,
        state=TaskState.RUNNING,
        group_name="g" * 63,
        error="e" * 5000,
        log_tail="line of output\n" * 4400,  # 64 KB
        result={"data": "r" * 15 * 1024},
        progress={"data": "p" * 15 * 1024},
    )
    live = record.live_status()
    assert custom_status_error(live) is None
    assert "logTail" not in live and "result" not in live
    assert live["progress"] == {"omitted": PROGRESS_OMITTED}
    assert len(live["error"]) == LIVE_ERROR_MAX_CHARS and live["error"].startswith("eee")
    small = record.with_(progress={"percent": 40}).live_status()
    assert small["progress"] == {"percent": 40}
    assert record.to_dict()["result"] == {"data": "r" * 15 * 1024}  # the whole record (the output) keeps it all
