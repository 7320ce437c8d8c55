"""JSON written before the pydantic models (commit c32184a) loads into them and is written back byte for byte: the
task orchestrator's input and output, the progress entity's state, a job's stored spec (and its fingerprint, which
makes resubmits idempotent) and a schedule's definition, all held in Durable state across a deploy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from acibatch.records import JobProgress, TaskRecord
from acibatch.schedules import ScheduleSpec, ScheduleState
from acibatch.spec import JobSpec

FIXTURES: dict[str, Any] = json.loads((Path(__file__).parent / "fixtures" / "stored_c32184a.json").read_text())


# Fields newer than the fixture (issue 24's files): written only when set, so the fixture's JSON stays valid
# byte for byte; their own round trips are in tests/unit/test_records.py and tests/unit/test_filespec.py.
ADDED_AFTER_FIXTURE = frozenset({"failure_category", "resource_files", "output_files"})


def compact(value: Any) -> bytes:
    """As the Durable SDK and the extension store it: compact JSON, keys in the order written."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


@pytest.mark.parametrize(
    ("name", "model"),
    [
        ("taskRecordFull", TaskRecord),
        ("taskRecordDefault", TaskRecord),
        ("jobProgressFull", JobProgress),
        ("jobProgressNoReasons", JobProgress),
        ("jobSpecWorkflow", JobSpec),
        ("jobSpecRanges", JobSpec),
        ("jobSpecPlain", JobSpec),
        ("scheduleSpec", ScheduleSpec),
        ("scheduleStateFull", ScheduleState),
        ("scheduleStateDefault", ScheduleState),
        ("scheduleStateOldCounts", ScheduleState),
    ],
)
def test_old_json_round_trips_byte_for_byte(name: str, model: Any) -> None:
    stored = FIXTURES[name]
    assert compact(model.from_dict(stored).to_dict()) == compact(stored)


@pytest.mark.parametrize("name", ["jobSpecWorkflow", "jobSpecRanges", "jobSpecPlain"])
def test_a_stored_job_keeps_its_fingerprint(name: str) -> None:
    assert JobSpec.from_dict(FIXTURES[name]).fingerprint() == FIXTURES[f"{name}Fingerprint"]


def test_the_task_views_are_unchanged() -> None:
    record = TaskRecord.from_dict(FIXTURES["taskRecordFull"])
    assert compact(record.live_status()) == compact(FIXTURES["taskRecordFullLive"])
    assert compact(record.public()) == compact(FIXTURES["taskRecordFullPublic"])


def test_the_schedule_view_is_unchanged() -> None:
    spec = ScheduleSpec.from_dict(FIXTURES["scheduleSpec"])
    assert compact(spec.public()) == compact(FIXTURES["schedulePublic"])


def test_the_fixtures_set_every_field_so_a_dropped_one_would_show() -> None:
    """A round trip of defaults cannot notice a field that is lost: each fixture sets every field off its default."""
    full = TaskRecord.from_dict(FIXTURES["taskRecordFull"])
    assert all(
        getattr(full, name) != field.get_default()
        for name, field in TaskRecord.model_fields.items()
        if name not in ADDED_AFTER_FIXTURE
    )
    progress = JobProgress.from_dict(FIXTURES["jobProgressFull"])
    assert all(
        getattr(progress, name) != field.get_default(call_default_factory=True)
        for name, field in JobProgress.model_fields.items()
    )
    state = ScheduleState.from_dict(FIXTURES["scheduleStateFull"])
    assert all(
        getattr(state, name) != field.get_default(call_default_factory=True)
        for name, field in ScheduleState.model_fields.items()
    )
    job = JobSpec.from_dict(FIXTURES["jobSpecWorkflow"])
    unset = [
        name
        for name, field in JobSpec.model_fields.items()
        if field.is_required() is False
        and getattr(job, name) == field.get_default(call_default_factory=True)
        and name not in ADDED_AFTER_FIXTURE
    ]
    assert unset == []


def test_stored_tasks_keep_their_index_in_the_whole_job() -> None:
    """A chunk of a job carries a slice of its tasks; each keeps its index in the job (a request's are numbered)."""
    stored = FIXTURES["jobSpecWorkflow"]
    chunk = {**stored, "tasks": stored["tasks"][2:]}
    assert [task.index for task in JobSpec.from_dict(chunk).tasks] == [2, 3]
    assert compact(JobSpec.from_dict(chunk).to_dict()) == compact(chunk)
