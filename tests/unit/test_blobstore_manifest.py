"""The agent manifest built from a real job spec (parse -> TaskInput -> manifest), and the SAS it carries used
against Azurite the way the agent uses them; the user delegation key cache with a stand-in key source."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.storage.blob import BlobClient, ContainerClient, UserDelegationKey

from acibatch.blobstore import layout
from acibatch.blobstore.agentaccess import STORAGE_NOT_CONFIGURED, AgentStorageError, agent_part
from acibatch.blobstore.layout import LogStream
from acibatch.blobstore.manifest import build_manifest, needs_default_outputs, needs_tenant_inputs
from acibatch.blobstore.sas import (
    BLOB_PERMISSIONS,
    KEY_LIFETIME,
    AttemptAccess,
    DelegationSigner,
    Purpose,
    SasWindow,
)
from acibatch.blobstore.store import blob_store
from acibatch.outbound import OutboundPolicy
from acibatch.plan import JobInput, TaskInput, task_inputs
from acibatch.settings import StorageSettings
from acibatch.spec import parse_job_spec

LOCAL = OutboundPolicy(allow_http=True, allow=())
SPEC: dict[str, Any] = {
    "image": "python:3.12-slim",
    "command": ["python3", "-c", "print(1)"],
    "resourceFiles": [{"autoStorageContainerName": "set", "blobPrefix": "csv/", "filePath": "data"}],
    "outputFiles": [{"filePattern": "out/*.txt", "destination": {"container": {"path": "res"}}}],
    "tasks": [
        {
            "id": "t0",
            "resourceFiles": [
                {"httpUrl": "https://example.com/x.bin?sig=tenant", "filePath": "x.bin", "fileMode": "644"},
                {"storageContainerUrl": "https://acct.blob.core.windows.net/c?sig=tenant"},
            ],
            "outputFiles": [
                {"filePattern": "summary.json", "uploadOptions": {"uploadCondition": "taskSuccess"}},
                {"filePattern": "**/*.log", "destination": {"container": {
                    "containerUrl": "https://acct.blob.core.windows.net/mine?sig=tenant", "path": "logs"}}},
            ],
        },
        {"id": "t1"},
    ],
}  # fmt: skip
ACCESS = AttemptAccess(
    logs={LogStream.STDOUT: "https://a/c/out?sas", LogStream.STDERR: "https://a/c/err?sas"},
    result="https://a/c/result?sas",
    inputs="https://a/c?read-sas",
    outputs="https://a/c?write-sas",
)


def tasks(storage: bool = True) -> list[TaskInput]:
    spec = parse_job_spec(SPEC, outbound=LOCAL, storage_enabled=True)
    job = JobInput("tenant-a", "job-1", spec.to_dict(), None, "fp", "now", 2.0, storage=storage)
    return task_inputs(job, spec, 0, len(spec.tasks))


def test_the_manifest_follows_the_contract() -> None:
    task = tasks()[0]
    assert task.agent and needs_tenant_inputs(task) and needs_default_outputs(task)
    manifest = build_manifest(task, 3, ACCESS)
    assert manifest == {
        "version": 1, "attempt": 3, "workDir": "/acibatch/wd",
        "inputs": [
            {"kind": "container", "containerUrl": "https://a/c?read-sas", "blobPrefix": "inputs/set/csv/",
             "stripPrefix": "inputs/set/", "filePath": "data", "fileMode": "0770"},
            {"kind": "http", "url": "https://example.com/x.bin?sig=tenant", "filePath": "x.bin", "fileMode": "0644"},
            {"kind": "container", "containerUrl": "https://acct.blob.core.windows.net/c?sig=tenant", "blobPrefix": "",
             "stripPrefix": "", "filePath": "", "fileMode": "0770"},
        ],
        "outputs": [
            {"filePattern": "out/*.txt", "uploadCondition": "taskCompletion", "containerUrl": "https://a/c?write-sas",
             "path": "jobs/job-1/tasks/t0/outputs/res", "destination": "default"},
            # No path: the prefix keeps its '/', so the agent names the file by itself below it.
            {"filePattern": "summary.json", "uploadCondition": "taskSuccess", "containerUrl": "https://a/c?write-sas",
             "path": "jobs/job-1/tasks/t0/outputs/", "destination": "default"},
            {"filePattern": "**/*.log", "uploadCondition": "taskCompletion",
             "containerUrl": "https://acct.blob.core.windows.net/mine?sig=tenant", "path": "logs",
             "destination": "custom"},
        ],
        "logs": {"stdout": "https://a/c/out?sas", "stderr": "https://a/c/err?sas"},
        "result": "https://a/c/result?sas",
    }  # fmt: skip
    # Job-level entries only for the second task: the job's lists come first, the task adds none.
    second = build_manifest(tasks()[1], 1, ACCESS)
    assert [item["kind"] for item in second["inputs"]] == ["container"] and len(second["outputs"]) == 1


def test_storage_off_when_the_attempt_starts_is_a_clear_refusal() -> None:
    with pytest.raises(AgentStorageError) as caught:
        agent_part(StorageSettings(), tasks()[0], 1)
    assert (caught.value.status, caught.value.code) == (400, STORAGE_NOT_CONFIGURED)
    assert "BATCH_STORAGE_CONNECTION_STRING" in str(caught.value)


@pytest.mark.azurite
def test_the_agent_part_minted_against_azurite_works_as_the_agent_uses_it(azurite: Any) -> None:
    prefix = f"m{uuid.uuid4().hex[:8]}-"
    storage = StorageSettings(
        connection_string=azurite.connection_string, container_prefix=prefix, agent_image="reg.io/acibatch/agent:1"
    )
    store = blob_store(storage)
    store.upload_input("tenant-a", "set", "csv/a.csv", b"a\n")
    store.upload_input("tenant-a", "set", "other.txt", b"not wanted\n")
    created = int(datetime.now(UTC).timestamp())
    part = agent_part(storage, tasks()[0], 2, created)
    # A re-run of the create activity (Durable runs activities at least once) sends ACI the same secret volume.
    assert agent_part(storage, tasks()[0], 2, created).manifest == part.manifest
    assert (part.image, part.cpu, part.memory_gb) == ("reg.io/acibatch/agent:1", 0.1, 0.2)
    assert "manifest" not in repr(part) and "sig=" not in repr(part)
    manifest = json.loads(part.manifest)
    staged = manifest["inputs"][0]
    container = ContainerClient.from_container_url(staged["containerUrl"], retry_total=0)
    names = [blob.name for blob in container.list_blobs(name_starts_with=staged["blobPrefix"])]
    assert names == ["inputs/set/csv/a.csv"]
    assert [name.removeprefix(staged["stripPrefix"]) for name in names] == ["csv/a.csv"]  # lands at data/csv/a.csv
    out = manifest["outputs"][0]
    ContainerClient.from_container_url(out["containerUrl"], retry_total=0).upload_blob(f"{out['path']}/r.txt", b"r")
    log = BlobClient.from_blob_url(manifest["logs"]["stderr"], retry_total=0)
    log.create_append_blob()
    log.append_block(b"oops\n")
    BlobClient.from_blob_url(manifest["result"], retry_total=0).upload_blob(json.dumps({"version": 1}))
    assert store.read_result("tenant-a", "job-1", "t0", 2) == {"version": 1}
    assert store.read_log("tenant-a", "job-1", "t0", 2, LogStream.STDERR).data == b"oops\n"
    size, chunks = store.output_chunks("tenant-a", "job-1", "t0", layout.outputs_prefix("job-1", "t0") + "res/r.txt")
    assert (size, b"".join(chunks)) == (1, b"r")
    assert base64.b64encode(part.manifest.encode())  # what the secret volume carries
    for container_item in store.client.list_containers(name_starts_with=prefix):
        store.client.delete_container(container_item.name)


def delegation_key(expiry: datetime) -> UserDelegationKey:
    key = UserDelegationKey()
    key.signed_oid, key.signed_tid, key.signed_service, key.signed_version = "oid", "tid", "b", "2025-01-05"
    key.signed_start = (expiry - timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%SZ")
    key.signed_expiry = expiry.strftime("%Y-%m-%dT%H:%M:%SZ")
    key.value = base64.b64encode(b"k" * 32).decode()
    return key


def test_the_delegation_key_is_fetched_once_and_replaced_before_it_expires() -> None:
    fetched: list[tuple[datetime, datetime]] = []

    def get_key(start: datetime, expiry: datetime) -> UserDelegationKey:
        fetched.append((start, expiry))
        return delegation_key(expiry)

    signer = DelegationSigner("acct", "https://acct.blob.core.windows.net", get_key)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    window = SasWindow.for_attempt(3600, now=now)
    _, cut = signer.key_for(window, now=now)
    # Asked for less than 7 days: Get User Delegation Key refuses more than 7 days by the service's clock.
    assert len(fetched) == 1 and cut == window and fetched[0] == (now - timedelta(minutes=5), now + KEY_LIFETIME)
    assert timedelta(days=7) > KEY_LIFETIME
    signer.key_for(SasWindow.for_attempt(3600, now=now + timedelta(days=3)), now=now + timedelta(days=3))
    assert len(fetched) == 1  # still good for that SAS
    # A SAS that would outlive the cached key gets a new key; one signed by it never outlives it.
    late = now + timedelta(days=6, hours=22)
    _, late_window = signer.key_for(SasWindow.for_attempt(3600, now=late), now=late)
    assert len(fetched) == 2 and late_window.expiry == late + timedelta(hours=2)
    sas = signer.blob_sas("acb-t", "jobs/j/tasks/t/attempts/1/result.json", BLOB_PERMISSIONS[Purpose.RESULT], window)
    assert "skoid=oid" in sas and "sp=cw" in sas and "spr=https" in sas


def test_sas_longer_than_any_key_share_the_fresh_key_instead_of_fetching_one_each() -> None:
    fetched: list[datetime] = []

    def get_key(start: datetime, expiry: datetime) -> UserDelegationKey:
        fetched.append(expiry)
        return delegation_key(expiry)

    signer = DelegationSigner("acct", "https://acct.blob.core.windows.net", get_key)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    week = 7 * 24 * 3600  # a week's timeout: each window asks for more than the cached key covers
    moments = [now + timedelta(seconds=second) for second in range(4)]
    windows = [signer.key_for(SasWindow.for_attempt(week, now=moment), now=moment)[1] for moment in moments]
    assert len(fetched) == 1  # four SAS, one key
    assert {window.expiry for window in windows} == {fetched[0]}  # each cut to the key's expiry
    # Once the key has aged past the margin, a long SAS gets a fresh key again.
    later = now + timedelta(hours=1)
    signer.key_for(SasWindow.for_attempt(7 * 24 * 3600, now=later), now=later)
    assert fetched == [now + KEY_LIFETIME, later + KEY_LIFETIME]


def test_a_rerun_of_the_create_signs_the_same_sas_with_the_cached_delegation_key() -> None:
    signer = DelegationSigner("acct", "https://acct.blob.core.windows.net", lambda _, expiry: delegation_key(expiry))
    created = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    stamp = int(created.timestamp())
    first = SasWindow.for_attempt(600, stamp, now=created + timedelta(seconds=1))
    again = SasWindow.for_attempt(600, stamp, now=created + timedelta(minutes=10))
    permission = BLOB_PERMISSIONS[Purpose.LOGS]
    blob = "jobs/j/tasks/t/attempts/1/stdout.txt"
    assert signer.blob_sas("acb-t", blob, permission, first) == signer.blob_sas("acb-t", blob, permission, again)
