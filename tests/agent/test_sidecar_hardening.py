"""The sidecar against what can go wrong around it: a task container that never runs the wrapper, a result it
cannot save, and files the user's command plants on the shared volume (FIFOs, markers, hostile names)."""

from __future__ import annotations

import os
import time

import pytest

from tests.agent.conftest import PREFIX, Task, staged

pytestmark = pytest.mark.azurite

ATTEMPT_BLOBS = sorted(f"{PREFIX}/attempts/1/{name}" for name in ("result.json", "stderr.txt", "stdout.txt"))


def test_a_wrapper_that_never_starts_ends_the_attempt_as_a_pre_processing_error(task: Task) -> None:
    # An image without /bin/sh: ACI cannot start `/bin/sh /acibatch/bin/run ...`, so nothing is ever recorded.
    staged(task, [task.default_output("out/*.txt", "taskFailure")])
    result, printed = task.finish(task.sidecar(ACIBATCH_START_TIMEOUT="1"), timeout=30)
    assert result["exitCode"] is None
    assert result["failure"]["category"] == "preProcessingError"
    assert "/acibatch/bin/run" in result["failure"]["message"]
    assert "/bin/sh" in result["failure"]["message"]
    assert result["outputs"] == []
    [(_, report)] = task.callbacks.wait()
    assert report == {"status": "completed", "exitCode": None, "outputs": {"count": 0, "bytes": 0},
                      "failure": result["failure"]}  # fmt: skip
    assert task.storage.names(task.container) == ATTEMPT_BLOBS
    task.assert_no_secret(printed)


def test_a_container_killed_before_its_first_heartbeat_ends_the_attempt(task: Task) -> None:
    staged(task, [])
    started = task.volume.state / "started"
    started.write_text("")
    os.utime(started, (time.time() - 120, time.time() - 120))
    result, _ = task.finish(task.sidecar(ACIBATCH_HEARTBEAT_TIMEOUT="5"), timeout=30)
    assert (result["exitCode"], result["failure"]) == (None, None)


def test_a_result_that_cannot_be_saved_is_a_file_upload_error(task: Task) -> None:
    task.manifest([], result_permission="r")  # a SAS that cannot write result.json
    task.volume.agent("stage-in")
    (task.volume.state / "exit").write_text("0\n")
    printed = task.wait(task.sidecar(), timeout=60)
    [(_, report)] = task.callbacks.wait()
    assert report["exitCode"] == 0
    assert report["failure"]["category"] == "fileUploadError"
    assert report["failure"]["file"] == "result.json"
    assert "HTTP 403" in report["failure"]["message"]
    task.assert_no_secret(printed)


HOSTILE = "out/x" + "\\.." * 6 + "\\inputs\\set\\data.csv"  # one Linux file name, with backslashes


@pytest.mark.parametrize("name", [HOSTILE, "out/report."])
def test_an_output_whose_blob_name_the_service_would_rewrite_is_refused(task: Task, name: str) -> None:
    # Blob storage reads a backslash as `/` and Azure resolves dot segments: uploaded as is, the first would land
    # at inputs/set/data.csv, over the tenant's own input set (outside the task's output prefix).
    staged(task, [task.default_output("out/*")])
    path = task.volume.wd / name
    script = 'mkdir -p "$(dirname "$1")" && printf evil > "$1"'
    assert task.volume.wrap("/bin/sh", "-c", script, "sh", str(path)).wait(30) == 0
    result, printed = task.finish(task.sidecar(), timeout=60)
    assert result["failure"]["category"] == "fileUploadError"
    assert result["failure"]["file"] == name
    assert "rename the file" in result["failure"]["message"]
    assert result["outputs"] == []
    assert task.storage.names(task.container) == ATTEMPT_BLOBS
    task.assert_no_secret(printed)


@pytest.mark.parametrize("planted", ["exit", "alive"])
def test_a_fifo_planted_in_state_never_hangs_the_sidecar(task: Task, planted: str) -> None:
    staged(task, [])
    (task.volume.state / "started").write_text("")
    os.mkfifo(task.volume.state / planted)
    sidecar = task.sidecar()
    if planted == "alive":  # the heartbeat is unreadable; the exit record still ends the attempt
        time.sleep(1)
        (task.volume.state / "exit").write_text("3\n")
    result, _ = task.finish(sidecar, timeout=30)
    assert result["exitCode"] == (None if planted == "exit" else 3)


def test_a_report_marker_planted_by_the_command_does_not_silence_the_sidecar(task: Task) -> None:
    staged(task, [])
    (task.volume.state / "reported").write_text("")
    (task.volume.state / "exit").write_text("0\n")
    result, _ = task.finish(task.sidecar(), timeout=60)
    assert result["exitCode"] == 0
    assert len(task.callbacks.wait()) == 1


def test_a_sidecar_restarted_after_its_report_does_nothing_again(task: Task) -> None:
    staged(task, [])
    (task.volume.state / "exit").write_text("0\n")
    task.finish(task.sidecar(), timeout=60)
    assert len(task.callbacks.wait()) == 1
    task.wait(task.sidecar(), timeout=30)
    assert len(task.callbacks.received) == 1
