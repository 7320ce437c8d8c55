"""Attempt SAS minted against Azurite with the real azure-storage-blob: each one allows exactly what its purpose
needs and Azurite refuses the rest (another blob, another verb, another tenant's container, after expiry)."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
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
# The agent (its own deployable, never installed in the venv) is imported from its folder, as tests/agent does.
AGENT_DIR = Path(__file__).resolve().parents[2] / "agent"


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


def test_the_agents_own_log_calls_go_through_the_log_sas_and_it_cannot_replace_or_delete_the_log(
    account: Any,
) -> None:
    """The storage calls the sidecar streams a log with, from the agent's own code (HEAD for the length, Put
    Blob of an append blob, Append Block at a position, HEAD again as a restarted sidecar does), with the app's
    log SAS, which has no write permission: replacing the log (a Put Blob over it, of either type) and deleting
    it are refused, so a task cannot rewrite or truncate what it logged."""
    if str(AGENT_DIR) not in sys.path:
        sys.path.insert(0, str(AGENT_DIR))
    from acibatch_agent import storage as agent

    _, mine, _, signer = account
    url = access_for(signer, mine.container_name).logs[LogStream.STDOUT]
    assert parse_qs(urlsplit(url).query)["sp"] == ["rac"]
    assert agent.blob_size(url, "test") is None
    agent.put_blob(url, b"", "test", blob_type="AppendBlob")
    agent.append_block(url, b"first\n", 0, "test")
    assert agent.blob_size(url, "test") == (6, 1)  # what a restarted sidecar resumes from
    agent.append_block(url, b"second\n", 6, "test")
    with pytest.raises(agent.StorageError) as stale:  # an append at a stale position is refused, not doubled
        agent.append_block(url, b"second\n", 6, "test")
    assert stale.value.status == 412
    name = layout.log_blob(JOB, TASK, ATTEMPT, LogStream.STDOUT)
    assert mine.download_blob(name).readall() == b"first\nsecond\n"
    with pytest.raises(agent.StorageError) as recreated:
        agent.put_blob(url, b"", "test", blob_type="AppendBlob")  # an empty append blob over it: truncation
    assert recreated.value.status == 403
    blob = BlobClient.from_blob_url(url, **NO_RETRY)
    assert refused(lambda: blob.upload_blob(b"forged", overwrite=True)) == 403  # a block blob over the log
    assert refused(blob.delete_blob) == 403
    assert mine.download_blob(name).readall() == b"first\nsecond\n"


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


def test_the_window_starts_in_the_past_and_ends_an_hour_after_the_timeout_capped_below_seven_days() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    window = SasWindow.for_attempt(1800, now=now)
    assert (window.start, window.expiry) == (now - timedelta(minutes=5), now + timedelta(minutes=90))
    assert SasWindow.for_attempt(30 * 24 * 3600, now=now).expiry == now + timedelta(days=6, hours=23)


def test_the_window_of_an_attempt_depends_on_its_creation_not_on_when_the_activity_runs() -> None:
    created = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    stamp = int(created.timestamp())
    first = SasWindow.for_attempt(1800, stamp, now=created + timedelta(seconds=2))
    # A re-run of the create activity a quarter of an hour later: the same window, so the same SAS.
    assert SasWindow.for_attempt(1800, stamp, now=created + timedelta(minutes=15)) == first
    assert first.start == created - timedelta(minutes=5)
    # Its step, the clock skew margin, the timeout, the upload grace, the orchestration's slack.
    assert first.expiry == created + timedelta(minutes=30 + 5 + 30 + 60 + 30)
    # A create that waited three hours for capacity: the start stays, the expiry still covers timeout + grace.
    late = created + timedelta(hours=3, minutes=10)
    waited = SasWindow.for_attempt(1800, stamp, now=late)
    assert waited.start == first.start and waited.expiry >= late + timedelta(minutes=90)
    assert waited.expiry == created + timedelta(hours=3) + timedelta(minutes=155)


def test_a_rerun_of_the_create_mints_byte_identical_sas_with_the_account_key() -> None:
    signer = AccountKeySigner("acct", "a2V5", "https://acct.blob.core.windows.net")
    created = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def mint(now: datetime) -> AttemptAccess:
        window = SasWindow.for_attempt(600, int(created.timestamp()), now=now)
        return attempt_access(signer, "acb-t", JOB, TASK, 1, window, inputs=True, outputs=True)

    first, again = mint(created + timedelta(seconds=1)), mint(created + timedelta(minutes=20))
    assert (first.logs, first.result, first.inputs, first.outputs) == (again.logs, again.result, again.inputs,
                                                                       again.outputs)  # fmt: skip
    query = parse_qs(urlsplit(first.result).query)
    assert query["st"] == ["2026-01-01T11:55:00Z"] and query["se"] == ["2026-01-01T14:15:00Z"]


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
