"""The app's own blob reads and writes (`acibatch.blobstore.store`) against Azurite with the real SDK."""

from __future__ import annotations

import json
import socket
import threading
import uuid
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient

from acibatch.blobstore import layout
from acibatch.blobstore.layout import LogStream
from acibatch.blobstore.sas import AccountKeySigner
from acibatch.blobstore.store import (
    BlobForbidden,
    BlobStore,
    BlobStoreError,
    BlobTransient,
    LogRead,
    StorageOff,
    StoredFile,
    blob_store,
)
from acibatch.settings import StorageSettings

pytestmark = pytest.mark.azurite
JOB, TASK = "j1", "t0"


@pytest.fixture
def store(azurite: Any) -> Any:
    prefix = f"s{uuid.uuid4().hex[:8]}-"
    found = blob_store(StorageSettings(connection_string=azurite.connection_string, container_prefix=prefix))
    yield found
    for container in found.client.list_containers(name_starts_with=prefix):
        found.client.delete_container(container.name)


def test_ensure_container_is_idempotent_and_safe_to_race(store: BlobStore) -> None:
    errors: list[BaseException] = []

    def ensure() -> None:
        try:
            store.ensure_container("tenant-a")
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=ensure) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store.ensure_container("tenant-a")
    assert errors == []
    assert [c.name for c in store.client.list_containers(name_starts_with=store.prefix)] == [store.prefix + "tenant-a"]


def test_read_result_is_none_until_the_agent_writes_it(store: BlobStore) -> None:
    store.ensure_container("t")
    assert store.read_result("t", JOB, TASK, 1) is None
    container = store.client.get_container_client(store.container_name("t"))
    container.upload_blob(layout.result_blob(JOB, TASK, 1), json.dumps({"version": 1, "exitCode": 0}))
    assert store.read_result("t", JOB, TASK, 1) == {"version": 1, "exitCode": 0}
    container.upload_blob(layout.result_blob(JOB, TASK, 2), b"not json")
    with pytest.raises(BlobStoreError, match="is not JSON"):
        store.read_result("t", JOB, TASK, 2)
    assert store.read_result("no-container-yet", JOB, TASK, 1) is None


def test_read_log_pages_by_offset_and_says_whether_the_log_exists(store: BlobStore) -> None:
    store.ensure_container("t")
    assert store.read_log("t", JOB, TASK, 1, LogStream.STDOUT) == LogRead(b"", 0, exists=False)
    blob = store.client.get_blob_client(store.container_name("t"), layout.log_blob(JOB, TASK, 1, LogStream.STDOUT))
    blob.create_append_blob()
    assert store.read_log("t", JOB, TASK, 1, LogStream.STDOUT) == LogRead(b"", 0, exists=True)  # empty so far
    blob.append_block(b"0123456789")
    assert store.read_log("t", JOB, TASK, 1, LogStream.STDOUT, offset=0, max_bytes=4) == LogRead(b"0123", 4, True)
    assert store.read_log("t", JOB, TASK, 1, LogStream.STDOUT, offset=4) == LogRead(b"456789", 10, True)
    assert store.read_log("t", JOB, TASK, 1, LogStream.STDOUT, offset=10) == LogRead(b"", 10, True)  # nothing new
    blob.append_block(b"ab")
    assert store.read_log("t", JOB, TASK, 1, LogStream.STDOUT, offset=10) == LogRead(b"ab", 12, True)
    assert store.log_sizes("t", JOB, TASK) == {1: {LogStream.STDOUT: 12}}


def test_outputs_are_read_in_chunks_and_only_under_the_tasks_outputs_prefix(store: BlobStore) -> None:
    store.ensure_container("t")
    name = layout.outputs_prefix(JOB, TASK) + "res/a.bin"
    data = bytes(range(256)) * 40_000  # bigger than one download chunk
    store.client.get_container_client(store.container_name("t")).upload_blob(name, data)
    size, chunks = store.output_chunks("t", JOB, TASK, name)
    assert size == len(data) and b"".join(chunks) == data
    for outside in (layout.result_blob(JOB, TASK, 1), layout.outputs_prefix(JOB, "other") + "x"):
        with pytest.raises(ValueError, match="is not an output of task"):
            store.output_chunks("t", JOB, TASK, outside)
    with pytest.raises(ValueError, match=r"'\.\.'"):
        store.output_chunks("t", JOB, TASK, layout.outputs_prefix(JOB, TASK) + "../attempts/1/result.json")


def test_inputs_upload_and_list(store: BlobStore) -> None:
    assert store.list_inputs("t", "set") == []  # no container yet
    assert store.upload_input("t", "set", "a/b.csv", b"1,2\n") == "inputs/set/a/b.csv"
    store.upload_input("t", "set", "c.txt", b"x")
    store.upload_input("t", "set", "c.txt", b"xy")  # replaced
    store.upload_input("t", "other", "d.txt", b"z")
    assert store.list_inputs("t", "set") == [StoredFile("a/b.csv", 4), StoredFile("c.txt", 2)]
    for bad in ("/abs", "a/../b", "a//b", "a\\b", ""):
        with pytest.raises(ValueError):
            store.upload_input("t", "set", bad, b"x")


def test_failures_are_typed_and_never_quote_the_key(azurite: Any) -> None:
    wrong_key = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5LXdyb25nLWtleQ=="
    forged = BlobServiceClient(azurite.blob_endpoint, credential={"account_name": azurite.account_name,
                               "account_key": wrong_key}, retry_total=0)  # fmt: skip
    signer = AccountKeySigner(azurite.account_name, wrong_key, azurite.blob_endpoint)
    with pytest.raises(BlobForbidden) as caught:
        BlobStore(forged, signer, "acb-").ensure_container("t")
    assert wrong_key not in str(caught.value) and "sig=" not in str(caught.value)
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    gone = BlobServiceClient(f"http://127.0.0.1:{port}/{azurite.account_name}", credential={
        "account_name": azurite.account_name, "account_key": azurite.account_key}, retry_total=0)  # fmt: skip
    with pytest.raises(BlobTransient, match="storage unreachable"):
        BlobStore(gone, signer, "acb-").read_result("t", JOB, TASK, 1)
    with pytest.raises(StorageOff, match="BATCH_STORAGE_CONNECTION_STRING or BATCH_STORAGE_ACCOUNT_URL"):
        blob_store(StorageSettings())
