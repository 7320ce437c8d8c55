"""File failures end to end on the local stack with storage (devhost runs the app, aciemu the task and its agent,
Azurite the blobs): a missing input fails the task as preProcessingError naming the file, an unwritable output
destination as fileUploadError; neither is retried, and neither leaves a container group, a lease or an output
listed as uploaded."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient, ContainerSasPermissions, generate_container_sas

from acibatch.aci import AciGateway, make_client
from localdev.client import BatchClient
from localdev.localstack import LOCAL_RESOURCE_GROUP, LOCAL_SUBSCRIPTION, LocalStack
from tests.e2e.conftest import python_job, wait_job, wait_no_groups
from tests.folderserve import serving_folder

pytestmark = [pytest.mark.e2e, pytest.mark.azurite]
WRITES_RESULT = "import os, pathlib; pathlib.Path(os.environ['AZ_BATCH_TASK_WORKING_DIR'], 'r.txt').write_text('x')"


@pytest.fixture(scope="module")
def files_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An HTTP server of an empty folder: every file asked of it is missing (404)."""
    folder = tmp_path_factory.mktemp("served")
    with serving_folder(folder) as url:
        yield url


def leftovers(stack: LocalStack, carol: BatchClient, job_id: str) -> tuple[list[str], Any]:
    """The job's container groups still in ACI and the tenant's running groups, once things settle."""
    gateway = AciGateway(make_client(LOCAL_SUBSCRIPTION, stack.aci_url, token=stack.aci_token), LOCAL_RESOURCE_GROUP)
    groups = wait_no_groups(gateway, f"carol-{job_id}")
    deadline = time.monotonic() + 20
    while (running := carol.get_tenant("carol")["running"]["groups"]) and time.monotonic() < deadline:
        time.sleep(0.3)
    return groups, running


def test_a_missing_input_fails_the_task_as_a_pre_processing_error_naming_the_file(
    stack: LocalStack, carol: BatchClient, files_server: str
) -> None:
    inputs = [{"httpUrl": f"{files_server}/data/missing.csv", "filePath": "data/missing.csv"}]
    carol.submit(python_job(WRITES_RESULT, jobId="no-input", maxAttempts=2, resourceFiles=inputs))
    job = wait_job(carol, "no-input", timeout=120)
    [task] = job["tasks"]
    assert (job["state"], task["state"], task["failureCategory"]) == ("Failed", "Failed", "preProcessingError")
    assert task["attempts"] == 1  # not retried: the exit conditions do not say so
    assert "data/missing.csv" in task["error"] and task["error"].startswith("preProcessingError: ")
    assert leftovers(stack, carol, "no-input") == ([], 0)


def test_an_unwritable_destination_fails_the_task_as_a_file_upload_error(
    stack: LocalStack, carol: BatchClient, tmp_path: Path
) -> None:
    service = BlobServiceClient.from_connection_string(stack.settings["BATCH_STORAGE_CONNECTION_STRING"])
    own = service.create_container("carol-readonly")
    sas = generate_container_sas(
        str(service.account_name), "carol-readonly", account_key=service.credential.account_key,
        permission=ContainerSasPermissions(read=True, list=True), expiry=datetime.now(UTC) + timedelta(hours=1),
    )  # fmt: skip
    outputs = [{"filePattern": "r.txt", "destination": {"container": {"containerUrl": f"{own.url}?{sas}"}}}]
    carol.submit(python_job(WRITES_RESULT, jobId="no-write", maxAttempts=2, outputFiles=outputs))
    job = wait_job(carol, "no-write", timeout=120)
    [task] = job["tasks"]
    assert (job["state"], task["state"], task["failureCategory"]) == ("Failed", "Failed", "fileUploadError")
    assert (task["attempts"], task["exitCode"]) == (1, 0)  # the command succeeded; its output did not move
    assert "r.txt" in task["error"] and "sig=" not in task["error"]
    assert [blob.name for blob in own.list_blobs()] == []
    assert carol.task_files("no-write", "0")["files"] == []  # nothing half-uploaded is listed as an output
    assert leftovers(stack, carol, "no-write") == ([], 0)
