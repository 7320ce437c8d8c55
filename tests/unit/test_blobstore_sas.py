"""Attempt SAS minted against Azurite with the real azure-storage-blob: each one allows exactly what its purpose
needs and Azurite refuses the rest (another blob, another verb, another tenant's container, after expiry)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import BlobClient, BlobServiceClient, ContainerClient

from acibatch.blobstore import layout
from acibatch.blobstore.layout import LogStream
from acibatch.blobstore.sas import (
    AccountKeySigner,
    AttemptAccess,
    SasWindow,
    StorageConfigError,
    attempt_access,
    sas_protocol,
)

pytestmark = pytest.mark.azurite
JOB, TASK, ATTEMPT = "job-1", "task.0", 2
NO_RETRY = {"retry_total": 0}


def refused(call: Callable[[], Any]) -> int:
    """The HTTP status Azurite refused `call` with (fails the test when it was allowed)."""
    with pytest.raises(HttpResponseError) as caught:
        call()
    assert caught.value.status_code is not None
    return caught.value.status_code


@pytest.fixture
def account(azurite: Any) -> Any:
    """Two tenants' containers on the session's Azurite, and a signer for the account."""
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    prefix = f"s{uuid.uuid4().hex[:8]}-"
    mine, theirs = service.create_container(prefix + "mine"), service.create_container(prefix + "theirs")
    signer = AccountKeySigner(azurite.account_name, azurite.account_key, azurite.blob_endpoint)
    yield service, mine, theirs, signer
    mine.delete_container()
    theirs.delete_container()
    service.close()


def access_for(signer: AccountKeySigner, container: str, window: SasWindow | None = None) -> AttemptAccess:
    return attempt_access(
        signer, container, JOB, TASK, ATTEMPT, window or SasWindow.for_attempt(600), inputs=True, outputs=True
    )


def test_the_log_sas_creates_and_appends_its_own_blob_and_nothing_else(account: Any) -> None:
    _, mine, _, signer = account
    access = access_for(signer, mine.container_name)
    stdout = BlobClient.from_blob_url(access.logs[LogStream.STDOUT], **NO_RETRY)
    stdout.create_append_blob()
    stdout.append_block(b"hello ")
    stdout.append_block(b"world\n")
    assert mine.download_blob(layout.log_blob(JOB, TASK, ATTEMPT, LogStream.STDOUT)).readall() == b"hello world\n"
    # Read (Get Blob Properties) on its own blob: the length a restarted sidecar resumes appending at.
    assert stdout.get_blob_properties().size == 12
    assert refused(stdout.delete_blob) == 403
    # The same signature on any other blob: the stderr log, result.json, another attempt's log.
    query = urlsplit(access.logs[LogStream.STDOUT]).query
    earlier = layout.log_blob(JOB, TASK, ATTEMPT - 1, LogStream.STDOUT)
    mine.upload_blob(earlier, b"attempt 1's log")
    for other in (
        layout.log_blob(JOB, TASK, ATTEMPT, LogStream.STDERR),
        layout.result_blob(JOB, TASK, ATTEMPT),
        earlier,
    ):
        forged = BlobClient.from_blob_url(f"{mine.url}/{other}?{query}", **NO_RETRY)
        assert refused(lambda forged=forged: forged.upload_blob(b"x")) == 403
    assert refused(BlobClient.from_blob_url(f"{mine.url}/{earlier}?{query}", **NO_RETRY).get_blob_properties) == 403
    listing = ContainerClient.from_container_url(f"{mine.url}?{query}", **NO_RETRY)
    assert refused(lambda: list(listing.list_blobs())) == 403


def test_the_result_sas_writes_result_json_only(account: Any) -> None:
    _, mine, _, signer = account
    access = access_for(signer, mine.container_name)
    result = BlobClient.from_blob_url(access.result, **NO_RETRY)
    result.upload_blob(b'{"version": 1}')
    assert mine.download_blob(layout.result_blob(JOB, TASK, ATTEMPT)).readall() == b'{"version": 1}'
    assert refused(lambda: result.download_blob().readall()) == 403
    assert refused(result.delete_blob) == 403
    query = urlsplit(access.result).query
    other = BlobClient.from_blob_url(f"{mine.url}/{layout.outputs_prefix(JOB, TASK)}x?{query}", **NO_RETRY)
    assert refused(lambda: other.upload_blob(b"x")) == 403


def test_the_inputs_sas_lists_and_reads_the_tenant_container_and_cannot_write(account: Any) -> None:
    _, mine, theirs, signer = account
    mine.upload_blob(layout.input_blob("set", "a/b.csv"), b"1,2\n")
    theirs.upload_blob(layout.input_blob("set", "secret.csv"), b"theirs\n")
    access = access_for(signer, mine.container_name)
    assert access.inputs is not None
    inputs = ContainerClient.from_container_url(access.inputs, **NO_RETRY)
    assert [blob.name for blob in inputs.list_blobs(name_starts_with="inputs/set/")] == ["inputs/set/a/b.csv"]
    assert inputs.download_blob("inputs/set/a/b.csv").readall() == b"1,2\n"
    assert refused(lambda: inputs.upload_blob("inputs/set/new.csv", b"x")) == 403
    assert refused(lambda: inputs.delete_blob("inputs/set/a/b.csv")) == 403
    # Another tenant's container with this signature: refused, listed or read.
    query = urlsplit(access.inputs).query
    other = ContainerClient.from_container_url(f"{theirs.url}?{query}", **NO_RETRY)
    assert refused(lambda: list(other.list_blobs())) == 403
    assert refused(lambda: other.download_blob("inputs/set/secret.csv").readall()) == 403


def test_the_outputs_sas_creates_blobs_in_the_tenant_container_only(account: Any) -> None:
    _, mine, theirs, signer = account
    access = access_for(signer, mine.container_name)
    assert access.outputs is not None
    outputs = ContainerClient.from_container_url(access.outputs, **NO_RETRY)
    name = layout.outputs_prefix(JOB, TASK) + "res/out.txt"
    outputs.upload_blob(name, b"result")
    assert mine.download_blob(name).readall() == b"result"
    assert refused(lambda: outputs.download_blob(name).readall()) == 403
    assert refused(lambda: list(outputs.list_blobs())) == 403
    query = urlsplit(access.outputs).query
    other = ContainerClient.from_container_url(f"{theirs.url}?{query}", **NO_RETRY)
    assert refused(lambda: other.upload_blob(name, b"x")) == 403


def test_an_expired_sas_is_refused(account: Any) -> None:
    _, mine, _, signer = account
    past = SasWindow.for_attempt(0, now=datetime.now(UTC) - timedelta(hours=3))
    access = access_for(signer, mine.container_name, past)
    assert refused(lambda: BlobClient.from_blob_url(access.result, **NO_RETRY).upload_blob(b"{}")) == 403


def test_the_window_starts_in_the_past_and_ends_an_hour_after_the_timeout_capped_at_seven_days() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    window = SasWindow.for_attempt(1800, now=now)
    assert (window.start, window.expiry) == (now - timedelta(minutes=5), now + timedelta(minutes=90))
    assert SasWindow.for_attempt(30 * 24 * 3600, now=now).expiry == now + timedelta(days=7)


def test_sas_are_https_only_except_for_an_emulator_on_loopback() -> None:
    signer = AccountKeySigner("acct", "a2V5", "https://acct.blob.core.windows.net")
    access = attempt_access(signer, "acb-t", JOB, TASK, 1, SasWindow.for_attempt(60), inputs=False, outputs=False)
    assert parse_qs(urlsplit(access.result).query)["spr"] == ["https"]
    assert access.inputs is None and access.outputs is None
    assert repr(access) == "AttemptAccess(<SAS URLs withheld>)" and "a2V5" not in repr(signer)
    assert sas_protocol("http://127.0.0.1:10000/devstoreaccount1") is None
    assert sas_protocol("http://localhost:10000/devstoreaccount1") is None
    with pytest.raises(StorageConfigError, match="plain http is allowed only for a local emulator"):
        sas_protocol("http://storage.example.com/acct")
