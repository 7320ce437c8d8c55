"""The OpenAPI document's schemas come from the models that validate requests and build answers: states, bounds,
enums and fields cannot say one thing in the document and another in the code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from acibatch import jobfields as limits
from acibatch import spec
from acibatch.dag import ArrayMode, Condition, DependsOn
from acibatch.exitrules import EXIT_CODE_MAX, EXIT_CODE_MIN, ExitAction, ExitConditions, ExitOptions, JobAction
from acibatch.openapi import openapi_document
from acibatch.records import JOB_STATES, TaskRecord, TaskState

DOCUMENT = openapi_document()
SCHEMAS: dict[str, Any] = DOCUMENT["components"]["schemas"]


def resolved(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with `#/components/schemas/...` references resolvable by jsonschema."""
    return {**schema, "components": DOCUMENT["components"]}


def accepts(name: str, instance: Any) -> bool:
    validator = jsonschema.Draft202012Validator(resolved(SCHEMAS[name]))
    return validator.is_valid(instance)


def test_bounds_and_patterns_are_the_validators_own() -> None:
    job = SCHEMAS["JobSpec"]["properties"]
    assert (job["cpu"]["minimum"], job["cpu"]["maximum"]) == (limits.CPU_STEP, limits.MAX_CPU)
    assert (job["memoryGb"]["minimum"], job["memoryGb"]["maximum"]) == (limits.MIN_MEMORY_GB, limits.MAX_MEMORY_GB)
    assert job["maxAttempts"]["maximum"] == limits.MAX_ATTEMPTS
    assert job["taskTimeoutSeconds"]["maximum"] == limits.MAX_TIMEOUT_SECONDS
    assert (job["jobPriority"]["minimum"], job["jobPriority"]["maximum"]) == (
        limits.MIN_JOB_PRIORITY,
        limits.MAX_JOB_PRIORITY,
    )
    assert (job["taskCount"]["maximum"], job["tasks"]["maxItems"]) == (limits.MAX_TASKS, limits.MAX_TASKS)
    assert job["env"]["maxProperties"] == limits.MAX_ENV_VARS
    assert job["command"]["maxItems"] == limits.MAX_COMMAND_ARGS
    assert job["jobId"]["anyOf"][0]["pattern"] == limits.ID_RULE.pattern
    code = SCHEMAS["ExitCodeRule"]["properties"]["code"]
    assert (code["minimum"], code["maximum"]) == (EXIT_CODE_MIN, EXIT_CODE_MAX)


@pytest.mark.parametrize(
    ("name", "enum"),
    [
        ("Priority", limits.Priority),
        ("Cleanup", limits.Cleanup),
        ("TaskFailureAction", limits.TaskFailureAction),
        ("ExitAction", ExitAction),
        ("JobAction", JobAction),
        ("Condition", Condition),
        ("ArrayMode", ArrayMode),
        ("TaskState", TaskState),
    ],
)
def test_enums_are_the_models_enums(name: str, enum: Any) -> None:
    assert SCHEMAS[name]["enum"] == [str(member) for member in enum]


def test_states_a_job_and_a_task_can_be_in() -> None:
    assert SCHEMAS["Job"]["properties"]["state"]["enum"] == [str(state) for state in JOB_STATES]
    assert SCHEMAS["Task"]["properties"]["state"]["$ref"] == "#/components/schemas/TaskState"
    assert set(SCHEMAS["Job"]["properties"]["counts"]["properties"]) == {str(state) for state in TaskState}


@pytest.mark.parametrize("model", [spec.TaskSpec, DependsOn, ExitConditions, ExitOptions])
def test_each_schema_lists_exactly_the_fields_a_request_may_send(model: Any) -> None:
    assert set(SCHEMAS[model.__name__]["properties"]) == model.request_fields()
    assert SCHEMAS[model.__name__]["additionalProperties"] is False


def test_a_task_shows_its_record_but_not_the_internal_fields() -> None:
    shown = set(SCHEMAS["Task"]["properties"])
    failed = TaskRecord.from_dict({"id": "t", "failureCategory": "fileUploadError"})
    assert shown == set(failed.public()) | {"reason"}
    assert not shown & set(TaskRecord.INTERNAL)
    # Written only when set, so not required; its values are the record's enum.
    assert "failureCategory" not in SCHEMAS["Task"]["required"]
    assert "failureCategory" not in TaskRecord.from_dict({"id": "t"}).public()


def test_the_example_jobs_are_valid_for_the_schema_and_the_validator() -> None:
    examples = sorted(p for p in (Path(__file__).parents[2] / "examples").glob("*.json") if p.name != "images.json")
    for path in examples:
        body = json.loads(path.read_text())
        assert accepts("JobSpec", body), path.name
        assert spec.parse_job_spec(body, storage_enabled=True).tasks  # files-job.json needs blob storage


@pytest.mark.parametrize(
    "body",
    [
        {"image": "python", "taskCount": 1, "env": {"BATCH_X": "1"}},  # a reserved name
        {"image": "python", "taskCount": 1, "env": {"_x": "1"}},  # a name the rule refuses
        {"image": "python", "taskCount": 1, "cpu": 5},
        {"image": "python", "tasks": [{"id": "a", "index": 0}]},  # stored only, never sent
        {"image": "python", "taskCount": 1, "tasks": [{"id": "a"}]},
        {"image": "Upper/Case", "taskCount": 1},
    ],
)
def test_what_the_validator_refuses_the_schema_refuses(body: dict[str, Any]) -> None:
    with pytest.raises(spec.JobSpecInvalid):
        spec.parse_job_spec(body)
    assert not accepts("JobSpec", body)
