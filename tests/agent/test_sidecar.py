"""The sidecar as a real process beside the wrapped command, against the session's Azurite and a local stand-in
for acibatch's callback endpoint."""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from pathlib import Path

import pytest
from azure.core.exceptions import ResourceNotFoundError

from tests.agent.conftest import PREFIX, TOKEN, Task, staged

pytestmark = pytest.mark.azurite


def test_logs_stream_while_the_command_runs_and_the_report_arrives(task: Task) -> None:
    staged(task, [])
    task.callbacks.answers.append(503)  # the first try is refused the way a restarting host would
    sidecar = task.sidecar()
    command = task.volume.wrap("/bin/sh", "-c", "for i in 1 2 3 4 5 6 7 8; do echo line $i; sleep 0.5; done; exit 2")
    seen_while_running = b""
    while command.poll() is None:
        with contextlib.suppress(ResourceNotFoundError):  # the blob may not exist yet in the first instants
            seen_while_running = task.log("stdout")
        time.sleep(0.3)
    assert command.returncode == 2
    assert seen_while_running.startswith(b"line 1\n")
    result, printed = task.finish(sidecar)
    assert task.log("stdout") == b"".join(f"line {i}\n".encode() for i in range(1, 9))
    assert result == {
        "version": 1,
        "attempt": 1,
        "exitCode": 2,
        "failure": None,
        "outputs": [],
        "logs": {"stdout": 56, "stderr": 0},
    }
    [(authorization, report)] = task.callbacks.wait()
    assert authorization == f"Bearer {TOKEN}"
    assert report == {"status": "completed", "exitCode": 2, "outputs": {"count": 0, "bytes": 0}, "failure": None}
    task.assert_no_secret(printed)


def test_a_50_mb_log_is_kept_whole(task: Task) -> None:
    staged(task, [])
    sidecar = task.sidecar()
    size = 50 * 1024 * 1024
    assert task.volume.wrap("/bin/sh", "-c", f"head -c {size} /dev/urandom").wait(timeout=120) == 0
    result, _ = task.finish(sidecar)
    kept = task.log("stdout")
    local = (task.volume.root / "logs" / "stdout.txt").read_bytes()
    assert len(kept) == size == result["logs"]["stdout"]
    assert hashlib.sha256(kept).digest() == hashlib.sha256(local).digest()


COMMAND = (
    "mkdir -p out/deep errors && echo one > out/a.txt && echo two > out/deep/b.txt && echo hidden > out/.h.txt"
    " && head -c 9437184 /dev/zero > out/big.txt && echo 1,2 > summary.csv && echo oops > errors/e.log"
)


@pytest.mark.parametrize("exit_code", [0, 1])
def test_three_patterns_upload_by_condition_with_batch_names(task: Task, exit_code: int) -> None:
    custom, to_custom = task.custom_output("errors/*.log", "taskFailure", "failures", "cw")
    staged(
        task,
        [
            task.default_output("out/**/*.txt"),
            task.default_output("summary.csv", "taskSuccess", "final/summary.csv"),
            to_custom,
        ],
    )
    sidecar = task.sidecar()
    wd = str(task.volume.wd)
    assert task.volume.wrap("/bin/sh", "-c", f"cd {wd} && {COMMAND} && exit {exit_code}").wait(60) == exit_code
    result, printed = task.finish(sidecar)
    assert result["failure"] is None
    names = [(item["name"], item["file"], item["destination"]) for item in result["outputs"]]
    expected = [
        (f"{PREFIX}/outputs/a.txt", "out/a.txt", "default"),
        (f"{PREFIX}/outputs/big.txt", "out/big.txt", "default"),
        (f"{PREFIX}/outputs/deep/b.txt", "out/deep/b.txt", "default"),
    ]
    if exit_code == 0:
        expected.append((f"{PREFIX}/outputs/final/summary.csv", "summary.csv", "default"))
    else:
        expected.append(("failures/e.log", "errors/e.log", "custom"))
    assert names == expected
    for item in result["outputs"]:
        container = custom if item["destination"] == "custom" else task.container
        data = task.storage.read(container, item["name"])
        assert (item["size"], item["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())
        assert data == (task.volume.wd / item["file"]).read_bytes()
        assert "?" not in item["container"]
    assert task.storage.read(task.container, f"{PREFIX}/outputs/big.txt") == bytes(9437184)
    [(_, report)] = task.callbacks.wait()
    assert report["outputs"] == {"count": 4, "bytes": sum(item["size"] for item in result["outputs"])}
    task.assert_no_secret(printed)


def test_an_unwritable_destination_is_a_file_upload_error_naming_the_file(task: Task) -> None:
    custom, read_only = task.custom_output("big.bin", "taskCompletion", "x/", "rl")
    staged(task, [task.default_output("first.txt"), read_only, task.default_output("never.txt")])
    sidecar = task.sidecar()
    wd = task.volume.wd
    script = f"cd {wd} && echo 1 > first.txt && head -c 6000000 /dev/zero > big.bin && echo 3 > never.txt"
    assert task.volume.wrap("/bin/sh", "-c", script).wait(60) == 0
    result, printed = task.finish(sidecar)
    assert result["failure"]["category"] == "fileUploadError"
    assert result["failure"]["file"] == "big.bin"
    assert "HTTP 403" in result["failure"]["message"]
    assert [item["file"] for item in result["outputs"]] == ["first.txt"]
    assert task.storage.names(custom) == []  # nothing half-written is visible
    assert f"{PREFIX}/outputs/never.txt" not in task.storage.names(task.container)
    [(_, report)] = task.callbacks.wait()
    assert report["failure"] == result["failure"]
    task.assert_no_secret(printed)


def test_a_failed_stage_in_is_reported_without_waiting_for_the_command(task: Task) -> None:
    missing = task.mint(task.storage.blob_url(task.container, "inputs/x/gone.csv", "r"))
    task.manifest([], inputs=[{"kind": "http", "url": missing, "filePath": "gone.csv"}])
    task.volume.agent("stage-in")
    assert task.volume.wrap("/bin/sh", "-c", "echo ran").wait(30) == 0
    result, printed = task.finish(task.sidecar())
    assert result["exitCode"] is None
    assert result["failure"]["category"] == "preProcessingError"
    assert result["failure"]["file"] == "gone.csv"
    assert task.log("stdout") == b""
    task.assert_no_secret(printed)


def test_a_container_killed_without_an_exit_record_ends_the_attempt(task: Task) -> None:
    staged(task, [])
    (task.volume.state / "started").write_text("")
    alive = task.volume.state / "alive"
    alive.write_text("")
    os.utime(alive, (time.time() - 120, time.time() - 120))
    result, _ = task.finish(task.sidecar(ACIBATCH_HEARTBEAT_TIMEOUT="5"))
    assert result["exitCode"] is None
    assert result["failure"] is None


def test_links_planted_by_the_command_never_leak_the_secret_volume(task: Task) -> None:
    staged(task, [task.default_output("out/manifest.json")])
    manifest = task.volume.secrets / "manifest.json"
    logs, wd = task.volume.root / "logs", task.volume.wd
    script = f"rm {logs}/stdout.txt && ln -s {manifest} {logs}/stdout.txt && ln -s {task.volume.secrets} {wd}/out"
    sidecar = task.sidecar()
    assert task.volume.wrap("/bin/sh", "-c", script).wait(30) == 0
    result, printed = task.finish(sidecar)
    assert result["failure"]["category"] == "fileUploadError"
    assert result["failure"]["file"] == "out/manifest.json"
    assert result["outputs"] == []
    assert task.log("stdout") == b""
    assert task.storage.names(task.container) == sorted(
        f"{PREFIX}/attempts/1/{name}" for name in ("result.json", "stderr.txt", "stdout.txt")
    )
    task.assert_no_secret(printed)


def test_an_append_that_had_already_landed_is_not_written_twice(task: Task, tmp_path: Path) -> None:
    from acibatch_agent.logstream import LogStream

    blob = f"{PREFIX}/attempts/1/stdout.txt"
    url = task.storage.blob_url(task.container, blob, "racw")
    stream = LogStream(str(tmp_path / "stdout.txt"), url, str(tmp_path), str(tmp_path / "stdout.logbase"))
    stream.start()
    (tmp_path / "stdout.txt").write_bytes(b"abcdef")
    # What a lost answer looks like: the service took the first append but the sidecar still thinks offset 0.
    task.storage.service.get_blob_client(task.container, blob).append_block(b"abc")
    assert stream.pump() == 3
    assert task.log("stdout") == b"abcdef"
    assert (stream.offset, stream.blocks) == (6, 2)
