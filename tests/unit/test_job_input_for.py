"""What the API records in a job's input at submission (`api.jobs.job_input_for`): the settings that decide the job's
whole life, so a settings change never alters a job already running."""

from __future__ import annotations

from acibatch.plan import JobInput, chunk_window
from acibatch.settings import Settings
from acibatch.spec import parse_job_spec
from api.jobs import job_input_for
from tests.unit.test_settings import VALID

SPEC = parse_job_spec({"jobId": "j1", "image": "registry.example.com/team/worker:1", "taskCount": 500})


def recorded(**settings: str) -> JobInput:
    signing = Settings.from_env({**VALID, "ACI_MAX_GROUPS": "40", **settings})
    job = job_input_for("team-a", "j1", SPEC, "f" * 64, signing, "2026-12-06T20:00:00.000000Z")
    return JobInput.from_dict(job.to_dict())  # as the job orchestration reads it back


def test_task_waves_off_records_no_region_so_every_chunk_starts_all_its_tasks() -> None:
    job = recorded()
    assert job.region_groups == 0 and "regionGroups" not in job.to_dict()
    assert chunk_window(len(SPEC.tasks), job.region_groups) is None


def test_task_waves_on_records_the_regions_groups_that_size_the_window() -> None:
    job = recorded(BATCH_TASK_WAVES="true")
    assert job.region_groups == 40 and job.to_dict()["regionGroups"] == 40
    assert chunk_window(len(SPEC.tasks), job.region_groups) == 4  # 2 x 40 groups over 22 chunks of 23, rounded up
