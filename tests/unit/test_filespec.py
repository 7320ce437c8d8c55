"""A job's resourceFiles and outputFiles: every rule with its message, the normalised form the task orchestration
gets (the job's entries, then the task's), the wire of tasks that move no files (unchanged), the storage and
command requirements, the OpenAPI document, and SAS redaction in answers."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import jsonschema
import pytest

from acibatch.exitrules import ExitConditions, options_for_file_upload, options_for_pre_processing
from acibatch.filespec import (
    MAX_OUTPUT_FILES,
    MAX_RESOURCE_FILES,
    STORAGE_SETTINGS,
    UploadCondition,
    redact_job_files,
    redact_url,
)
from acibatch.openapi import openapi_document
from acibatch.outbound import OutboundPolicy, parse_allow_list
from acibatch.plan import JobInput, TaskInput, task_inputs
from acibatch.scheduling.spec import ScheduleSpec, parse_schedule_spec
from acibatch.spec import JobSpec, JobSpecInvalid, parse_job_spec

BASE: dict[str, Any] = {"image": "myregistry.azurecr.io/team/worker:1.2", "command": ["python3", "main.py"]}
HTTP_IN = {"httpUrl": "https://data.example.com/in.csv?sv=2024&sig=SECRET1", "filePath": "in/data.csv"}
CONTAINER_IN = {"storageContainerUrl": "https://acct.blob.core.windows.net/c?sv=2024&sig=SECRET2", "blobPrefix": "x/"}
AUTO_IN = {"autoStorageContainerName": "genome-2026", "filePath": "ref"}
OUT = {"filePattern": "out/**/*.txt"}
CUSTOM_OUT = {
    "filePattern": "*.log",
    "destination": {"container": {"containerUrl": "https://acct.blob.core.windows.net/r?sig=SECRET3", "path": "logs"}},
    "uploadOptions": {"uploadCondition": "taskFailure"},
}


def parsed(data: dict[str, Any], **options: Any) -> JobSpec:
    return parse_job_spec(data, storage_enabled=True, **options)


def errors_of(data: dict[str, Any], **options: Any) -> dict[str, str]:
    options.setdefault("storage_enabled", True)
    with pytest.raises(JobSpecInvalid) as caught:
        parse_job_spec(data, **options)
    return {error.path: error.message for error in caught.value.errors}


def job_input(spec: JobSpec, *, storage: bool) -> JobInput:
    return JobInput("team-a", "j1", spec.to_dict(), None, spec.fingerprint(), "2026-01-05T08:59:00Z", 5.0, storage)


# -- normalised form and the effective lists ------------------------------------------------------------------


def test_entries_are_normalised_with_batchs_defaults() -> None:
    spec = parsed(
        {**BASE, "taskCount": 1, "resourceFiles": [HTTP_IN, {**AUTO_IN, "fileMode": "644"}], "outputFiles": [OUT]}
    )
    resource = [item.to_dict() for item in spec.resource_files]
    assert resource == [{**HTTP_IN, "fileMode": "0770"}, {**AUTO_IN, "fileMode": "0644"}]
    assert spec.output_files[0].to_dict() == {
        "filePattern": "out/**/*.txt",
        "destination": {"container": {}},
        "uploadOptions": {"uploadCondition": "taskCompletion"},
    }
    assert spec.output_files[0].upload_options.upload_condition is UploadCondition.TASK_COMPLETION
    # The same entry written with or without its defaults is the same job (idempotent resubmits).
    explicit = {**OUT, "destination": {"container": {}}, "uploadOptions": {"uploadCondition": "taskCompletion"}}
    resource = [{**HTTP_IN, "fileMode": "770"}, {**AUTO_IN, "fileMode": "0644"}]
    again = parsed({**BASE, "taskCount": 1, "resourceFiles": resource, "outputFiles": [explicit]})
    assert again.fingerprint() == spec.fingerprint()
    assert JobSpec.from_dict(spec.to_dict()) == spec


def test_a_tasks_lists_are_the_jobs_then_its_own() -> None:
    spec = parsed({
        **BASE, "resourceFiles": [AUTO_IN], "outputFiles": [OUT],
        "tasks": [{"id": "a", "resourceFiles": [HTTP_IN], "outputFiles": [CUSTOM_OUT]}, {"id": "b"}],
    })  # fmt: skip
    first, second = task_inputs(job_input(spec, storage=True), spec, 0, 2)
    assert [item.get("autoStorageContainerName") or item.get("httpUrl") for item in first.resource_files] == [
        "genome-2026",
        HTTP_IN["httpUrl"],
    ]
    assert [item["filePattern"] for item in first.output_files] == ["out/**/*.txt", "*.log"]
    assert first.output_files[1]["uploadOptions"] == {"uploadCondition": "taskFailure"}
    assert [item["filePattern"] for item in second.output_files] == ["out/**/*.txt"]
    assert first.agent and second.agent
    assert TaskInput.from_dict(json.loads(json.dumps(first.to_dict()))) == first


def test_the_agent_runs_a_task_with_a_command_only_when_the_job_was_submitted_with_storage() -> None:
    spec = parsed({"image": BASE["image"], "tasks": [{"id": "a", "command": ["true"]}, {"id": "b"}]})
    with_storage = task_inputs(job_input(spec, storage=True), spec, 0, 2)
    assert [task.agent for task in with_storage] == [True, False]  # b runs the image's own command: no wrapper
    assert not any(task.agent for task in task_inputs(job_input(spec, storage=False), spec, 0, 2))
    assert JobInput.from_dict(job_input(spec, storage=True).to_dict()).storage is True


def test_a_job_that_moves_no_files_keeps_its_wire_byte_for_byte() -> None:
    spec = parsed({**BASE, "tasks": [{"id": "a", "env": {"X": "1"}}]})
    job = job_input(spec, storage=False)
    assert "storage" not in job.to_dict()
    assert not {"resourceFiles", "outputFiles"} & set(spec.to_dict())
    assert not {"resourceFiles", "outputFiles"} & set(spec.to_dict()["tasks"][0])
    wire = task_inputs(job, spec, 0, 1)[0].to_dict()
    assert list(wire) == [
        *("tenant", "jobId", "taskId", "index", "image", "command", "env", "sealedSecureEnv", "cpu", "memoryGb"),
        *("priority", "spotFallback", "maxAttempts", "taskTimeoutSeconds", "onSuccess", "onFailure", "pollSeconds"),
    ]
    # The same spec parsed with storage off (as before this feature) is the same job.
    assert parse_job_spec({**BASE, "tasks": [{"id": "a", "env": {"X": "1"}}]}).fingerprint() == spec.fingerprint()


# -- validation: each rule with its message --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "path", "message"),
    [
        ({}, "resourceFiles[0]", "must give exactly one of httpUrl, storageContainerUrl, autoStorageContainerName"),
        ({**HTTP_IN, **AUTO_IN}, "resourceFiles[0]", "(got httpUrl and autoStorageContainerName)"),
        ({"httpUrl": HTTP_IN["httpUrl"]}, "resourceFiles[0].filePath", "is required with httpUrl"),
        ({**HTTP_IN, "blobPrefix": "a/"}, "resourceFiles[0].blobPrefix", "applies only to a container source"),
        ({**AUTO_IN, "filePath": "/etc"}, "resourceFiles[0].filePath", "must be a relative file path (no leading '/')"),
        ({**AUTO_IN, "filePath": "a/../../x"}, "resourceFiles[0].filePath", "must not contain '..'"),
        ({**AUTO_IN, "filePath": "a\\b"}, "resourceFiles[0].filePath", "must use '/' between directories"),
        ({**AUTO_IN, "filePath": ""}, "resourceFiles[0].filePath", "must not be empty"),
        ({**AUTO_IN, "filePath": "a\x00"}, "resourceFiles[0].filePath", "with no NUL"),
        ({**AUTO_IN, "fileMode": "999"}, "resourceFiles[0].fileMode", "must be an octal mode string like '0770'"),
        ({**AUTO_IN, "fileMode": 770}, "resourceFiles[0].fileMode", "must be an octal mode string"),
        ({"autoStorageContainerName": "Data_1"}, "resourceFiles[0].autoStorageContainerName", "lowercase letters"),
        ({"autoStorageContainerName": "a--b"}, "resourceFiles[0].autoStorageContainerName", "single '-'"),
        ({"autoStorageContainerName": "a" * 64}, "resourceFiles[0].autoStorageContainerName", "must be 1-63"),
        ({**AUTO_IN, "extra": 1}, "resourceFiles[0].extra", "unknown field"),
        ("in.csv", "resourceFiles[0]", 'must be an object like {"httpUrl"'),
        (
            {"httpUrl": "ftp://x.example.com/a", "filePath": "a"},
            "resourceFiles[0].httpUrl",
            "must be an absolute https",
        ),
        ({"httpUrl": "https://10.0.0.4/a", "filePath": "a"}, "resourceFiles[0].httpUrl", "a private (RFC 1918)"),
        ({"storageContainerUrl": "https://127.0.0.1:10000/c"}, "resourceFiles[0].storageContainerUrl", "loopback"),
    ],
)
def test_each_resource_file_rule_says_what_to_fix(entry: Any, path: str, message: str) -> None:
    found = errors_of({**BASE, "taskCount": 1, "resourceFiles": [entry]})
    assert message in found[path], found


@pytest.mark.parametrize(
    ("entry", "path", "message"),
    [
        ({}, "outputFiles[0].filePattern", "is required: a file pattern relative to the task's working directory"),
        ({"filePattern": "../up/*"}, "outputFiles[0].filePattern", "must not contain '..'"),
        ({"filePattern": "/abs/*"}, "outputFiles[0].filePattern", "must be a relative file pattern"),
        ({**OUT, "destination": {"container": {"path": "../x"}}}, "outputFiles[0].destination.container.path", "'..'"),
        ({**OUT, "destination": {"container": {"path": "/x"}}}, "outputFiles[0].destination.container.path",
         "relative blob path"),
        ({**OUT, "destination": {"bucket": {}}}, "outputFiles[0].destination.bucket", "unknown field"),
        ({**OUT, "destination": "x"}, "outputFiles[0].destination", 'must be an object like {"container"'),
        ({**OUT, "destination": {"container": {"containerUrl": "http://acct.example.com/c"}}},
         "outputFiles[0].destination.container.containerUrl", "must be an absolute https URL"),
        ({**OUT, "uploadOptions": {"uploadCondition": "always"}}, "outputFiles[0].uploadOptions.uploadCondition",
         "must be the string 'taskSuccess' or 'taskFailure' or 'taskCompletion', not 'always'"),
    ],
)  # fmt: skip
def test_each_output_file_rule_says_what_to_fix(entry: Any, path: str, message: str) -> None:
    found = errors_of({**BASE, "taskCount": 1, "outputFiles": [entry]})
    assert message in found[path], found


@pytest.mark.parametrize(
    ("field", "entry", "limit", "word"),
    [("resourceFiles", AUTO_IN, MAX_RESOURCE_FILES, "resource files"),
     ("outputFiles", OUT, MAX_OUTPUT_FILES, "output files")],
)  # fmt: skip
def test_list_limits_name_the_count(field: str, entry: dict[str, Any], limit: int, word: str) -> None:
    assert parsed({**BASE, "taskCount": 1, field: [entry] * limit})
    found = errors_of({**BASE, "tasks": [{"id": "a", field: [entry] * (limit + 1)}]})
    assert found[f"tasks[0].{field}"] == f"has {limit + 1} {word}; at most {limit} are allowed"
    assert "must be a list of objects" in errors_of({**BASE, "taskCount": 1, field: {"a": 1}})[field]


def test_plain_http_reaches_only_a_local_emulator_the_operator_allowed() -> None:
    local = OutboundPolicy(allow_http=True, allow=parse_allow_list("127.0.0.1:10000"))
    azurite = {"storageContainerUrl": "http://127.0.0.1:10000/devstoreaccount1/acb-t?sig=x"}
    assert parsed({**BASE, "taskCount": 1, "resourceFiles": [azurite]}, outbound=local).resource_files
    public_http = {"httpUrl": "http://data.example.com/a", "filePath": "a"}
    found = errors_of({**BASE, "taskCount": 1, "resourceFiles": [public_http]}, outbound=local)
    assert "plain http is allowed only for a local emulator" in found["resourceFiles[0].httpUrl"]
    # The strict default (Azure): no loopback, no http.
    strict = errors_of({**BASE, "taskCount": 1, "resourceFiles": [azurite]})
    assert "plain http is not allowed" in strict["resourceFiles[0].storageContainerUrl"]


def test_all_problems_come_at_once_in_reading_order() -> None:
    found = errors_of({**BASE, "cpu": 9, "resourceFiles": [{}], "outputFiles": [{}], "tasks": [{"id": "a/b"}]})
    assert list(found) == ["cpu", "resourceFiles[0]", "outputFiles[0].filePattern", "tasks[0].id"]


# -- storage and command requirements ---------------------------------------------------------------------------


def test_without_storage_a_job_that_moves_files_is_refused_naming_the_settings() -> None:
    found = errors_of({**BASE, "taskCount": 1, "outputFiles": [OUT]}, storage_enabled=False)
    assert STORAGE_SETTINGS in found["outputFiles"] and "needs blob storage" in found["outputFiles"]
    # A task's own lists too, and with every other problem at once.
    found = errors_of(
        {**BASE, "cpu": 9, "tasks": [{"id": "a"}, {"id": "b", "resourceFiles": [AUTO_IN]}]}, storage_enabled=False
    )
    assert set(found) == {"tasks[1]", "cpu"} and STORAGE_SETTINGS in found["tasks[1]"]
    assert (
        "(and 1 more places)"
        in errors_of(
            {**BASE, "outputFiles": [OUT], "tasks": [{"id": "a", "outputFiles": [OUT]}]}, storage_enabled=False
        )["outputFiles"]
    )
    # Empty lists move nothing: accepted as before.
    assert parse_job_spec({**BASE, "taskCount": 1, "resourceFiles": [], "outputFiles": []})


def test_a_task_that_moves_files_needs_a_command_the_agent_can_wrap() -> None:
    image_only = {"image": BASE["image"]}
    found = errors_of({**image_only, "taskCount": 2, "outputFiles": [OUT]})
    assert set(found) == {"command"} and "the job moves files" in found["command"]
    found = errors_of({**image_only, "tasks": [{"id": "a", "resourceFiles": [AUTO_IN]}, {"id": "b"}]})
    assert set(found) == {"tasks[0].command"} and "this task moves files" in found["tasks[0].command"]
    found = errors_of({**BASE, "tasks": [{"id": "a", "command": [], "outputFiles": [OUT]}]})
    assert set(found) == {"tasks[0].command"}
    # A job command covers tasks that bring none; a task's own command covers it alone.
    assert parsed({**BASE, "tasks": [{"id": "a", "outputFiles": [OUT]}]})
    assert parsed({**image_only, "tasks": [{"id": "a", "command": ["run"], "outputFiles": [OUT]}, {"id": "b"}]})


# -- exit conditions for file failures --------------------------------------------------------------------------


def test_file_upload_options_come_from_the_task_then_the_job() -> None:
    task = ExitConditions.from_dict({"fileUploadError": {"action": "retry"}})
    job = ExitConditions.from_dict({"fileUploadError": {"action": "fail"}, "preProcessingError": {"action": "retry"}})
    found = options_for_file_upload([task, job])
    assert found is not None and str(found.action) == "retry"
    found = options_for_file_upload([ExitConditions(), job])
    assert found is not None and str(found.action) == "fail"
    assert options_for_file_upload([ExitConditions()]) is None
    pre = options_for_pre_processing([task, job])
    assert pre is not None and str(pre.action) == "retry"


# -- the OpenAPI document -----------------------------------------------------------------------------------------

SCHEMAS = openapi_document()["components"]["schemas"]


def test_the_document_lists_the_new_fields_from_the_models() -> None:
    for name in ("JobSpec", "TaskSpec"):
        properties = SCHEMAS[name]["properties"]
        assert properties["resourceFiles"]["maxItems"] == MAX_RESOURCE_FILES
        assert properties["outputFiles"]["maxItems"] == MAX_OUTPUT_FILES
    assert set(SCHEMAS["ResourceFile"]["properties"]) == {
        *("httpUrl", "storageContainerUrl", "autoStorageContainerName", "blobPrefix", "filePath", "fileMode"),
    }
    assert SCHEMAS["OutputFile"]["required"] == ["filePattern"]
    assert SCHEMAS["UploadCondition"]["enum"] == [str(member) for member in UploadCondition]
    assert "failureCategory" in SCHEMAS["Task"]["properties"]


@pytest.mark.parametrize(
    ("entry", "valid"),
    [(HTTP_IN, True), (CONTAINER_IN, True), ({**HTTP_IN, **AUTO_IN}, False),
     ({"httpUrl": "https://a.example/x"}, False), ({**HTTP_IN, "blobPrefix": "a"}, False),
     ({"autoStorageContainerName": "UP"}, False)],
)  # fmt: skip
def test_the_schema_states_the_rules_across_a_resource_files_fields(entry: dict[str, Any], valid: bool) -> None:
    body = {**BASE, "taskCount": 1, "resourceFiles": [entry]}
    schema = {**SCHEMAS["JobSpec"], "components": {"schemas": SCHEMAS}}
    assert jsonschema.Draft202012Validator(schema).is_valid(body) is valid
    try:
        parsed(body)
        accepted = True
    except JobSpecInvalid:
        accepted = False
    assert accepted is valid


# -- SAS redaction in answers -------------------------------------------------------------------------------------


def test_a_tenants_sas_is_redacted_from_urls_answered_back() -> None:
    assert redact_url("https://acct.blob.core.windows.net/c?sv=1&sig=abc") == "https://acct.blob.core.windows.net/c?..."
    assert redact_url("https://acct.blob.core.windows.net/c/x.csv") == "https://acct.blob.core.windows.net/c/x.csv"
    spec = parsed(
        {**BASE, "resourceFiles": [HTTP_IN, CONTAINER_IN], "tasks": [{"id": "a", "outputFiles": [CUSTOM_OUT]}]}
    )
    stored = spec.to_dict()
    shown = json.dumps(redact_job_files(stored))
    assert "SECRET" not in shown and shown.count("?...") == 3
    assert "SECRET1" in json.dumps(stored)  # the stored spec keeps them: the agent needs them


def test_a_schedules_view_never_shows_a_file_urls_sas() -> None:
    # Schedules are refused files until they pass the storage setting through; their view is redacted already.
    schedule = parse_schedule_spec(
        {"schedule": {"recurrenceInterval": "PT1H"}, "jobSpecification": {**BASE, "taskCount": 1}},
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    job = parsed({**BASE, "taskCount": 1, "outputFiles": [CUSTOM_OUT]})
    shown = json.dumps(ScheduleSpec.model_construct(**{**dict(schedule), "job": job}).public())
    assert "SECRET3" not in shown and "?..." in shown
