"""The schedule spec: validate a `PUT /api/schedules/{id}` body into a `ScheduleSpec`, every error at once."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from pydantic import Field
from pydantic import ValidationError as PydanticValidationError

from acibatch.filespec import redact_job_files
from acibatch.models.base import StoredModel, problems_of, spec_path, validate_request
from acibatch.outbound import OutboundPolicy
from acibatch.scheduling.recurrence import Recurrence, whole_second
from acibatch.scheduling.request import MAX_DEADLINE_SECONDS, RECURRENCE_FIELDS, SCHEDULE_FIELDS, ScheduleRequest
from acibatch.scheduling.wake import CatchUp, ConcurrencyPolicy
from acibatch.spec import STRICT_OUTBOUND, JobSpec, SpecError

__all__ = [
    "MAX_DEADLINE_SECONDS",
    "RECURRENCE_FIELDS",
    "SCHEDULE_FIELDS",
    "SCHEDULE_ID_RULE",
    "ScheduleSpec",
    "ScheduleSpecInvalid",
    "parse_schedule_spec",
]

# No '.': a tick's job id joins the schedule id and the instant with one ('nightly.20261206T020000Z'), so no
# schedule's job id can equal another schedule's. 39 characters leave room for '.manual.' and the instant
# within a job id's 63.
SCHEDULE_ID_RULE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,38}$")


class ScheduleSpecInvalid(ValueError):
    def __init__(self, errors: list[SpecError]) -> None:
        super().__init__("; ".join(f"{error.path}: {error.message}" for error in errors))
        self.errors = errors


class ScheduleSpec(StoredModel):
    """A validated schedule. `job` is the job spec as submitted each tick (its jobId is set per tick)."""

    recurrence: Recurrence
    concurrency_policy: ConcurrencyPolicy
    catch_up: CatchUp
    suspend: bool = False
    starting_deadline_seconds: int | None = None
    job: JobSpec
    request: dict[str, Any] = Field(default_factory=dict)  # the body as sent, but for jobSpecification
    secure_env_names: tuple[str, ...] = ()  # the durable form keeps the names; the values are sealed apart

    def public(self) -> dict[str, Any]:
        """The schedule as the API shows it: the body as sent, the job spec in canonical form with secure values
        hidden and a plain task list written back as its `taskCount`."""
        job = redact_job_files(self.job.to_dict())  # a tenant's SAS in a file URL is never answered back
        job.pop("jobId")
        job["secureEnv"] = dict.fromkeys(sorted({*job["secureEnv"], *self.secure_env_names}), "(hidden)")
        tasks = job["tasks"]
        if all(task == {"id": str(number), "index": number} for number, task in enumerate(tasks)):
            del job["tasks"]
            job["taskCount"] = len(tasks)
        return {**self.request, "jobSpecification": job}

    def to_dict(self) -> dict[str, Any]:
        """Durable form (entity state, activity input): never holds secure env values (they are sealed apart), but
        the names of all of them, the job's and those sealed before."""
        data = super().to_dict()
        data["job"]["secureEnv"] = {}
        data["secureEnvNames"] = sorted({*self.job.secure_env, *self.secure_env_names})
        return data


def parse_schedule_spec(
    data: object, *, created_at: datetime, outbound: OutboundPolicy = STRICT_OUTBOUND, storage_enabled: bool = False
) -> ScheduleSpec:
    """Validate a `PUT /api/schedules/{id}` body; raise `ScheduleSpecInvalid` listing every error.

    `created_at` anchors interval schedules without `doNotRunUntil` (their first run is one interval later);
    `storage_enabled` as for `parse_job_spec` (a job specification that moves files needs blob storage)."""
    try:
        request = validate_request(ScheduleRequest, data, outbound, storage_enabled=storage_enabled)
    except PydanticValidationError as invalid:
        raise ScheduleSpecInvalid(
            [SpecError(spec_path(loc), message) for loc, message in problems_of(invalid)]
        ) from None
    assert isinstance(data, dict)  # the model refuses anything else
    not_before, not_after = request.do_not_run_until, request.do_not_run_after
    interval = request.schedule.recurrence_interval
    recurrence = Recurrence(
        cron=request.schedule.cron,
        time_zone=request.schedule.time_zone,
        interval_seconds=interval,
        anchor=(not_before or whole_second(created_at) + timedelta(seconds=interval)) if interval else None,
        not_before=not_before,
        not_after=not_after,
    )
    if recurrence.cron is not None and recurrence.next_after(not_before or created_at) is None:
        message = "never fires" + (" before doNotRunAfter" if not_after else "") + "; check the day and month fields"
        raise ScheduleSpecInvalid([SpecError("schedule.cron", message)])
    # The job spec is kept once, in canonical form (`job`); the rest of the body as it was sent.
    return ScheduleSpec(
        recurrence=recurrence,
        concurrency_policy=request.concurrency_policy,
        catch_up=request.catch_up,
        suspend=request.suspend,
        starting_deadline_seconds=request.starting_deadline_seconds,
        job=request.job_specification,
        request={name: value for name, value in data.items() if name != "jobSpecification"},
    )
