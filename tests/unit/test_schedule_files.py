"""Schedules may carry files when blob storage is on, as `POST /jobs` may: the storage setting reaches the job
specification's validation through the request context, and each run checks today's settings again before it
starts (a run whose files would be skipped, or whose group no longer fits, is refused with the reason).
The runs themselves, on the local stack with Azurite, are in tests/integration/test_agent_requests.py."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel, field_validator

from acibatch.models.base import current_request, validate_request
from acibatch.scheduling.spec import ScheduleSpecInvalid, parse_schedule_spec
from activities.schedule import storage_refusal
from tests.appsettings import app_settings
from tests.unit.test_settings import VALID

CREATED = datetime(2026, 1, 1, tzinfo=UTC)
INPUTS = [{"autoStorageContainerName": "corpus", "filePath": "in"}]
OUTPUTS = [{"filePattern": "out/*.txt"}]
JOB = {"image": "registry.example.com/team/worker:1", "command": ["run"], "taskCount": 2}
CONNECTION = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
    "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1"
)


def body(**job: Any) -> dict[str, Any]:
    return {"schedule": {"recurrenceInterval": "PT1H"}, "jobSpecification": {**JOB, **job}}


def test_with_storage_a_schedules_job_may_list_files() -> None:
    spec = parse_schedule_spec(body(resourceFiles=INPUTS, outputFiles=OUTPUTS), created_at=CREATED,
                               storage_enabled=True)  # fmt: skip
    assert spec.job.moves_files
    stored = spec.to_dict()["job"]
    assert stored["resourceFiles"][0]["autoStorageContainerName"] == "corpus"
    assert stored["outputFiles"][0]["uploadOptions"] == {"uploadCondition": "taskCompletion"}


def test_without_storage_it_is_refused_at_the_job_specifications_path() -> None:
    with pytest.raises(ScheduleSpecInvalid) as caught:
        parse_schedule_spec(body(resourceFiles=INPUTS), created_at=CREATED)
    [error] = caught.value.errors
    assert error.path == "jobSpecification.resourceFiles"
    assert "needs blob storage" in error.message and "BATCH_STORAGE_CONNECTION_STRING" in error.message


def test_the_request_context_carries_the_storage_flag_and_is_gone_after() -> None:
    seen = []

    class Probe(BaseModel):
        value: int

        @field_validator("value")
        @classmethod
        def _look(cls, value: int) -> int:
            request = current_request()
            seen.append(None if request is None else request.storage_enabled)
            return value

    validate_request(Probe, {"value": 1}, storage_enabled=True)
    validate_request(Probe, {"value": 1})
    Probe.model_validate({"value": 1})  # our own JSON: no request
    assert seen == [True, False, None] and current_request() is None


@pytest.fixture
def storage(request: pytest.FixtureRequest) -> Iterator[None]:
    """App settings with storage on (param True; a connection string nothing connects to here) or off."""
    env = {**VALID, "BATCH_AGENT_CPU": "0.5"}
    if request.param:
        env |= {"BATCH_STORAGE_CONNECTION_STRING": CONNECTION, "BATCH_AGENT_IMAGE": "r.example.com/agent:1"}
    with app_settings(env):
        yield


@pytest.mark.parametrize("storage", [False], indirect=True)
def test_a_run_whose_files_storage_was_turned_off_is_refused_not_run_without_them(storage: None) -> None:
    spec = parse_schedule_spec(body(outputFiles=OUTPUTS), created_at=CREATED, storage_enabled=True)
    refusal = storage_refusal(spec.job)
    assert refusal is not None and refusal.startswith("the job moves files but blob storage is not configured now")
    assert storage_refusal(parse_schedule_spec(body(), created_at=CREATED).job) is None


@pytest.mark.parametrize("storage", [True], indirect=True)
def test_a_run_whose_group_no_longer_fits_with_todays_agent_is_refused(storage: None) -> None:
    # Put when the agent asked for 0.1 cores; BATCH_AGENT_CPU is 0.5 now, and 3.8 + 0.5 is over a group's 4.
    spec = parse_schedule_spec(body(cpu=3.8, outputFiles=OUTPUTS), created_at=CREATED, storage_enabled=True)
    refusal = storage_refusal(spec.job)
    assert refusal is not None and refusal.startswith("jobSpecification.cpu: each task's container group also runs")
    assert "3.8 + 0.5 = 4.3 cores" in refusal and "set cpu to at most 3.5" in refusal
    assert storage_refusal(parse_schedule_spec(body(cpu=3.5), created_at=CREATED).job) is None
