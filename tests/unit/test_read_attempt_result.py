"""The `read_attempt_result` activity, as the Functions worker indexes it, reading result.json from Azurite with
the real storage SDK; and how a result.json reads (`AttemptResult.from_result_json`) whatever it holds."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import azure.durable_functions as df
import pytest
from azure.storage.blob import BlobServiceClient

import activities
from acibatch import durable_names as names
from acibatch.blobstore import layout
from acibatch.callbacks import FileFailure
from acibatch.messages.aci import AttemptRef, AttemptResult
from acibatch.records import FailureCategory
from acibatch.settings import current as current_settings
from tests.unit.test_settings import VALID

TENANT, JOB, TASK = "team-a", "j1", "t0"
RESULT = {
    "version": 1,
    "attempt": 2,
    "exitCode": 0,
    "failure": None,
    "outputs": [
        {"name": "jobs/j1/tasks/t0/outputs/a.txt", "file": "out/a.txt", "size": 5, "sha256": "0" * 64,
         "destination": "default", "container": "http://127.0.0.1/devstoreaccount1/acb-team-a"},
        {"name": "b.txt", "file": "out/b.txt", "size": 7, "sha256": "1" * 64, "destination": "custom",
         "container": "https://acct.blob.core.windows.net/theirs"},
    ],
    "logs": {"stdout": 10, "stderr": 0},
}  # fmt: skip


def activity_handle(name: str) -> Callable[[Any], Any]:
    """The activity's function as the Functions worker calls it (the blueprint indexed on a DFApp)."""
    app = df.DFApp()
    app.register_functions(activities.bp)
    for function in app.get_functions():
        if getattr(function.get_trigger(), "activity", None) == name:
            handle: Callable[[Any], Any] = function.get_user_function()
            return handle
    raise AssertionError(f"no activity {name}")


@pytest.fixture
def storage(azurite: Any) -> Iterator[BlobServiceClient]:
    """App settings with storage on Azurite (a container prefix of this test's own); the service client."""
    prefix = f"r{uuid.uuid4().hex[:8]}-"
    env = {
        **VALID,
        "BATCH_STORAGE_CONNECTION_STRING": azurite.connection_string,
        "BATCH_STORAGE_CONTAINER_PREFIX": prefix,
        "BATCH_AGENT_IMAGE": "registry.example.com/acibatch/agent:1",
    }
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        current_settings.cache_clear()
        service.create_container(prefix + TENANT)
        yield service
        service.delete_container(prefix + TENANT)
    current_settings.cache_clear()


def put_result(service: BlobServiceClient, attempt: int, body: bytes) -> None:
    container = current_settings().storage.container_prefix + TENANT
    service.get_blob_client(container, layout.result_blob(JOB, TASK, attempt)).upload_blob(body, overwrite=True)


def ref(attempt: int) -> dict[str, Any]:
    return AttemptRef(TENANT, JOB, TASK, attempt).to_dict()


@pytest.mark.azurite
def test_the_activity_answers_the_outcome_and_never_the_output_list(storage: BlobServiceClient) -> None:
    read = activity_handle(names.READ_ATTEMPT_RESULT)
    assert read(ref(2)) == {"found": False}  # the agent wrote nothing (yet)
    put_result(storage, 2, json.dumps(RESULT).encode())
    answer = read(ref(2))
    assert answer == {"found": True, "exitCode": 0, "failure": None, "outputs": {"count": 2, "bytes": 12}}
    assert AttemptResult.parse(answer) == AttemptResult(True, 0, None, 2, 12)
    # Another attempt's result never answers for this one.
    assert read(ref(3)) == {"found": False}


@pytest.mark.azurite
def test_a_result_json_cut_short_reads_as_none(storage: BlobServiceClient) -> None:
    put_result(storage, 1, json.dumps({**RESULT, "attempt": 1}).encode()[:40])
    assert activity_handle(names.READ_ATTEMPT_RESULT)(ref(1)) == {"found": False}


def test_the_activity_reads_as_none_with_storage_switched_off() -> None:
    with pytest.MonkeyPatch.context() as patch:
        for key, value in VALID.items():
            patch.setenv(key, value)
        patch.delenv("BATCH_STORAGE_CONNECTION_STRING", raising=False)
        patch.delenv("BATCH_STORAGE_ACCOUNT_URL", raising=False)
        current_settings.cache_clear()
        try:
            assert activity_handle(names.READ_ATTEMPT_RESULT)(ref(1)) == {"found": False}
        finally:
            current_settings.cache_clear()


def test_a_failure_in_result_json_travels_without_a_sas() -> None:
    failure = {"category": "fileUploadError", "message": "PUT https://a/c/x?sig=SECRET: 403", "file": "out/x"}
    read = AttemptResult.from_result_json({**RESULT, "exitCode": 3, "failure": failure, "outputs": []}, 2)
    assert read == AttemptResult(
        True, 3, FileFailure(FailureCategory.FILE_UPLOAD_ERROR, "PUT https://a/c/x?... 403", "out/x"), 0, 0
    )
    assert "SECRET" not in json.dumps(read.to_dict())
    assert AttemptResult.parse(read.to_dict()) == read


@pytest.mark.parametrize(
    "document",
    [
        None,
        [],
        {**RESULT, "version": 2},
        {**RESULT, "attempt": 1},
        {**RESULT, "exitCode": "0"},
        {**RESULT, "exitCode": True},
        {**RESULT, "outputs": None},
        {**RESULT, "outputs": [{"size": -1}]},
        {**RESULT, "outputs": ["a.txt"]},
        {**RESULT, "failure": {"category": "taskFailure"}},
    ],
)
def test_a_result_json_that_is_not_this_attempts_version_1_reads_as_none(document: Any) -> None:
    assert AttemptResult.from_result_json(document, 2) == AttemptResult(False)
