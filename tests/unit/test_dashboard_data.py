"""The dashboard's pure helpers: the task-state string, state and time filters, ETags and If-None-Match."""

from __future__ import annotations

from datetime import UTC, datetime

from acibatch.records import JobProgress, TaskState
from api.dashboard_data import (
    LETTERS,
    etag_matches,
    etag_of,
    ids_in_state,
    parse_time,
    state_string,
    submitted_since,
)


def test_letters_are_the_progress_entitys_own() -> None:
    progress = JobProgress(total=7)
    for task_id, state in zip("abcdefg", TaskState, strict=True):
        progress.set_task(task_id, state)
    assert state_string(list("abcdefg"), progress) == "".join(LETTERS[state] for state in TaskState) == "QRSFCKB"


def test_state_string_follows_task_order_and_unreported_tasks_are_queued() -> None:
    progress = JobProgress(total=4)
    progress.set_task("t2", TaskState.RUNNING)
    progress.set_task("t0", TaskState.FAILED)
    ids = ["t0", "t1", "t2", "t3"]
    assert state_string(ids, progress) == "FQRQ"
    assert len(state_string([str(i) for i in range(10_000)], progress)) == 10_000


def test_ids_in_state() -> None:
    ids = ["a", "b", "c", "d"]
    assert ids_in_state(ids, "FSFQ", TaskState.FAILED) == ["a", "c"]
    assert ids_in_state(ids, "FSFQ", TaskState.CANCELLED) == []
    assert ids_in_state(ids, "FSFQ", None) == ids


def test_parse_time() -> None:
    assert parse_time("2026-01-31T12:00:00Z") == datetime(2026, 1, 31, 12, tzinfo=UTC)
    assert parse_time("2026-01-31T13:00:00+01:00") == datetime(2026, 1, 31, 12, tzinfo=UTC)
    assert parse_time("2026-01-31T12:00:00") == datetime(2026, 1, 31, 12, tzinfo=UTC)  # no offset: UTC
    assert parse_time("2026-01-31T12:00:00.123456Z") is not None
    for bad in ("yesterday", "", "2026-13-01T00:00:00Z", "12:00"):
        assert parse_time(bad) is None, bad


def test_submitted_since_keeps_order_and_drops_unknown_times_when_filtering() -> None:
    jobs = [
        {"jobId": "new", "createdAt": "2026-02-01T00:00:00.5Z"},
        {"jobId": "old", "createdAt": "2026-01-01T00:00:00Z"},
        {"jobId": "odd", "createdAt": None},
    ]
    assert [j["jobId"] for j in submitted_since(jobs, None)] == ["new", "old", "odd"]
    since = datetime(2026, 1, 15, tzinfo=UTC)
    assert [j["jobId"] for j in submitted_since(jobs, since)] == ["new"]


def test_etag_is_stable_and_follows_the_body() -> None:
    body = {"b": 1, "a": [1, 2]}
    tag = etag_of(body)
    assert tag == etag_of({"a": [1, 2], "b": 1})  # key order does not matter
    assert tag != etag_of({"a": [1, 2], "b": 2})
    assert tag.startswith('"') and tag.endswith('"')


def test_if_none_match_compares_weakly_and_accepts_lists_and_star() -> None:
    tag = '"abc"'
    assert etag_matches('"abc"', tag)
    assert etag_matches('W/"abc"', tag)
    assert etag_matches('"x", "abc"', tag)
    assert etag_matches("*", tag)
    assert not etag_matches('"abcd"', tag)
    assert not etag_matches("", tag)
    assert not etag_matches(None, tag)
