"""The files API on the real local stack with storage: devhost runs the app, aciemu runs the task and its agent,
Azurite holds the blobs. Input sets are uploaded and listed, a task stages one in, writes outputs and logs, and the
API and the CLI list, download and read them; another tenant reaches none of it, and bad requests are 4xx.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient, ContainerSasPermissions, generate_container_sas

from localdev.client import ApiCallError, BatchClient
from localdev.localstack import LocalStack
from tests.e2e.conftest import python_job, wait_job
from tests.httpserve import call_json

pytestmark = [pytest.mark.e2e, pytest.mark.azurite]
INPUT = b"3\n4\n5\n"
# Reads the staged input, writes two outputs (one in a folder) and a line to each stream. Inputs land in, and
# output patterns are relative to, the task's working directory; the command starts in the image's WORKDIR.
TASK = """
import os, pathlib, sys
os.chdir(os.environ['AZ_BATCH_TASK_WORKING_DIR'])
numbers = [int(line) for line in pathlib.Path('data/numbers.txt').read_text().split()]
out = pathlib.Path('out'); (out / 'deep').mkdir(parents=True)
(out / 'sum.txt').write_text(str(sum(numbers)) + '\\n')
(out / 'deep' / 'squares.txt').write_text(' '.join(str(n * n) for n in numbers) + '\\n')
print('summed', len(numbers), 'numbers'); print('a warning', file=sys.stderr)
"""


@pytest.fixture(scope="module")
def finished(alice: BatchClient) -> dict[str, Any]:
    """A job of alice's whose task staged her input set in and wrote outputs and logs."""
    alice.upload_input("numbers", "numbers.txt", INPUT)
    spec = python_job(
        TASK,
        jobId="files",
        resourceFiles=[{"autoStorageContainerName": "numbers", "filePath": "data"}],
        outputFiles=[{"filePattern": "out/**/*.txt", "destination": {"container": {"path": "results"}}}],
    )
    alice.submit(spec)
    return wait_job(alice, "files", timeout=120)


def cli(stack: LocalStack, key: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    command = [sys.executable, "-m", "localdev.cli", "--url", stack.api_url, "--key", key, *args]
    return subprocess.run(command, capture_output=True, timeout=120, check=False)


def get(stack: LocalStack, key: str, path: str) -> tuple[int, Any]:
    return call_json(f"{stack.api_url}/{path}", headers={"Authorization": f"Bearer {key}"})


def test_input_sets_are_uploaded_listed_and_private(stack: LocalStack, alice: BatchClient, bob: BatchClient,
                                                    tmp_path: Path) -> None:  # fmt: skip
    (tmp_path / "set" / "sub").mkdir(parents=True)
    (tmp_path / "set" / "a.csv").write_bytes(b"1,2\n")
    (tmp_path / "set" / "sub" / "b.csv").write_bytes(b"3,4\n")
    done = cli(stack, alice.key or "", "upload", "shared-name", str(tmp_path / "set"))
    assert done.returncode == 0, done.stderr
    listing = alice.inputs("shared-name")
    assert listing["files"] == [{"path": "a.csv", "size": 4}, {"path": "sub/b.csv", "size": 4}]
    stored = alice.upload_input("shared-name", "c.bin", b"\x00\x01")
    assert stored == {"name": "shared-name", "path": "c.bin", "size": 2, "sha256": hashlib.sha256(b"\0\1").hexdigest()}
    # The same set name under another tenant is that tenant's own (empty) set: the container comes from the key.
    assert bob.inputs("shared-name")["files"] == []


@pytest.mark.parametrize(
    ("method", "path", "status", "says"),
    [
        ("PUT", "storage/Bad_Name/x.txt", 400, "lowercase letters"),
        ("PUT", "storage/ok/%2E%2E/escape.txt", 400, "'..' segment"),
        ("PUT", "storage/ok/", 400, "give the file's path"),
        ("GET", "storage/-bad", 400, "lowercase letters"),
        ("GET", "storage/ok?limit=0", 400, "'limit'"),
    ],
)
def test_bad_input_requests_are_4xx_saying_what_to_fix(
    stack: LocalStack, alice: BatchClient, method: str, path: str, status: int, says: str
) -> None:
    request = urllib.request.Request(
        f"{stack.api_url}/{path}", data=b"x" if method == "PUT" else None, method=method,
        headers={"Authorization": f"Bearer {alice.key}"},
    )  # fmt: skip
    try:
        urllib.request.urlopen(request, timeout=30)
        raise AssertionError("accepted")
    except urllib.error.HTTPError as error:
        body = json.loads(error.read())
        assert error.code == status and says in body["error"]["message"], body


def test_the_tasks_outputs_are_listed_and_downloaded_by_the_cli(
    stack: LocalStack, alice: BatchClient, finished: dict[str, Any], tmp_path: Path
) -> None:
    assert finished["state"] == "Succeeded", finished["tasks"]
    listing = alice.task_files("files", "0")
    by_file = {item["file"]: item for item in listing["files"]}
    assert set(by_file) == {"out/sum.txt", "out/deep/squares.txt"}
    assert by_file["out/sum.txt"]["name"] == "jobs/files/tasks/0/outputs/results/sum.txt"
    assert by_file["out/sum.txt"]["sha256"] == hashlib.sha256(b"12\n").hexdigest()
    done = cli(stack, alice.key or "", "download", "files", "--to", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "0" / "results" / "sum.txt").read_bytes() == b"12\n"
    assert (tmp_path / "0" / "results" / "deep" / "squares.txt").read_bytes() == b"9 16 25\n"
    status, missing = get(stack, alice.key or "", "jobs/files/tasks/0/files/jobs/files/tasks/0/outputs/nope.txt")
    assert status == 404 and "lists no output" in missing["error"]["message"]


def test_the_whole_log_is_read_from_storage_after_the_group_is_gone(
    stack: LocalStack, alice: BatchClient, finished: dict[str, Any]
) -> None:
    stdout = alice.log_page("files", "0")
    assert stdout.paged and stdout.complete and stdout.content == b"summed 3 numbers\n"
    assert alice.log_page("files", "0", stream="stderr").content == b"a warning\n"
    as_json = alice.logs("files", "0")  # the dashboard's form
    assert as_json["source"] == "blob" and as_json["content"] == "summed 3 numbers\n" and as_json["complete"]
    done = cli(stack, alice.key or "", "logs", "files", "0", "--follow")
    assert done.returncode == 0 and done.stdout == b"summed 3 numbers\n"
    for query, says in (("attempt=9", "'attempt'"), ("offset=-1", "'offset'"), ("stream=both", "stdout or stderr")):
        status, body = get(stack, alice.key or "", f"jobs/files/tasks/0/logs?{query}")
        assert status == 400 and says in body["error"]["message"]


def test_another_tenant_reaches_none_of_the_files_or_logs(
    stack: LocalStack, bob: BatchClient, finished: dict[str, Any]
) -> None:
    name = "jobs/files/tasks/0/outputs/results/sum.txt"
    for call in (
        lambda: bob.task_files("files", "0"),
        lambda: bob.open_file("files", "0", name),
        lambda: bob.log_page("files", "0"),
        lambda: bob.logs("files", "0"),
    ):
        with pytest.raises(ApiCallError) as caught:
            call()
        assert caught.value.status == 404 and caught.value.code == "JobNotFound"


def test_no_answer_holds_a_sas_or_the_account_key(
    stack: LocalStack, alice: BatchClient, finished: dict[str, Any]
) -> None:
    key = stack.settings["BATCH_STORAGE_CONNECTION_STRING"].split("AccountKey=")[1].split(";")[0]
    answers = [
        json.dumps(alice.task_files("files", "0")),
        json.dumps(alice.logs("files", "0")),
        json.dumps(alice.job("files")),
        json.dumps(alice.inputs("numbers")),
    ]
    for text in answers:
        assert "sig=" not in text and key not in text


BIG_LINES = 9 * 1024  # 9 MiB of 1 KiB lines: three pages
SLOW = "import time\nfor n in range(12):\n    print('tick', n, flush=True); time.sleep(0.4)\n"


def test_a_log_longer_than_a_page_is_read_whole_in_pages(stack: LocalStack, alice: BatchClient) -> None:
    line = "x" * 1023 + "\n"
    alice.submit(python_job(f"import sys\nsys.stdout.write({line!r} * {BIG_LINES})", jobId="big-log"))
    assert wait_job(alice, "big-log", timeout=120)["state"] == "Succeeded"
    first = alice.log_page("big-log", "0")
    assert len(first.content) == 4 * 1024 * 1024 and first.complete
    done = cli(stack, alice.key or "", "logs", "big-log", "0")
    assert done.returncode == 0 and len(done.stdout) == BIG_LINES * 1024
    assert hashlib.sha256(done.stdout).digest() == hashlib.sha256((line * BIG_LINES).encode()).digest()
    tail = alice.log_page("big-log", "0", tail=2)
    assert tail.content == (line * 2).encode() and tail.next_offset == BIG_LINES * 1024


def test_follow_waits_for_the_task_and_streams_it_until_its_attempt_ends(stack: LocalStack, alice: BatchClient) -> None:
    alice.submit(python_job(SLOW, jobId="slow-log"))
    done = cli(stack, alice.key or "", "logs", "slow-log", "0", "--follow")  # at once: the task is still queued
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().splitlines() == [f"tick {n}" for n in range(12)]
    # --follow returned only once the attempt had ended.
    assert alice.job("slow-log")["tasks"][0]["state"] == "Succeeded"


RETRIED = """
import os, sys, time
attempt = os.environ['BATCH_ATTEMPT']
for n in range(6):
    print('attempt', attempt, 'line', n, flush=True); time.sleep(0.3)
sys.exit(1 if attempt == '1' else 0)
"""


def test_follow_reads_a_failed_attempt_and_its_retry_whole(stack: LocalStack, alice: BatchClient) -> None:
    alice.submit(python_job(RETRIED, jobId="retried-log", maxAttempts=2))
    done = cli(stack, alice.key or "", "logs", "retried-log", "0", "--follow")  # from the start: still queued
    assert done.returncode == 0, done.stderr
    lines = [f"attempt {attempt} line {n}" for attempt in (1, 2) for n in range(6)]
    assert done.stdout.decode().splitlines() == lines
    assert "--- attempt 2 of task 0 (stdout) ---" in done.stderr.decode()
    task = alice.job("retried-log")["tasks"][0]
    assert (task["state"], task["attempts"]) == ("Succeeded", 2)
    # Each attempt's log stays readable on its own, and a finished one is complete.
    first = alice.log_page("retried-log", "0", attempt=1)
    assert first.complete and first.content.decode().splitlines() == lines[:6]
    assert (first.attempt, first.latest_attempt, first.task_ended) == (1, 2, True)


def test_an_output_in_the_tenants_own_container_is_listed_but_not_served(stack: LocalStack, alice: BatchClient) -> None:
    service = BlobServiceClient.from_connection_string(stack.settings["BATCH_STORAGE_CONNECTION_STRING"])
    own = service.create_container("alice-own")
    sas = generate_container_sas(
        str(service.account_name), "alice-own", account_key=service.credential.account_key,
        permission=ContainerSasPermissions(create=True, write=True), expiry=datetime.now(UTC) + timedelta(hours=1),
    )  # fmt: skip
    url = f"{own.url}?{sas}"
    code = "import os, pathlib; pathlib.Path(os.environ['AZ_BATCH_TASK_WORKING_DIR'], 'r.txt').write_text('mine')"
    outputs = [{"filePattern": "r.txt", "destination": {"container": {"containerUrl": url, "path": "x/r.txt"}}}]
    alice.submit(python_job(code, jobId="own-dest", outputFiles=outputs))
    assert wait_job(alice, "own-dest", timeout=120)["state"] == "Succeeded"
    listing = alice.task_files("own-dest", "0")
    assert [(item["name"], item["destination"]) for item in listing["files"]] == [("x/r.txt", "custom")]
    assert own.download_blob("x/r.txt").readall() == b"mine"
    with pytest.raises(ApiCallError) as caught:
        alice.open_file("own-dest", "0", "x/r.txt")
    assert caught.value.status == 409 and "your own container" in caught.value.message
    assert "sig=" not in json.dumps(listing)
