"""The sidecar across restarts: of itself on the same volume, and of the whole group on an emptied volume (what
ACI may do on a restart in place), against the session's Azurite."""

from __future__ import annotations

import shutil
import time

import pytest
from azure.core.exceptions import ResourceNotFoundError

from tests.agent.conftest import Task, staged

pytestmark = pytest.mark.azurite


def wait_for_log(task: Task, stream: str, expected: bytes, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    seen = b""
    while time.monotonic() < deadline:
        try:
            seen = task.log(stream)
        except ResourceNotFoundError:  # the blob may not exist in the first instants
            seen = b""
        if seen == expected:
            return
        time.sleep(0.1)
    raise AssertionError(f"the {stream} blob holds {seen!r}, not {expected!r}")


def append(task: Task, stream: str, data: bytes) -> None:
    """What the wrapper does with the command's output."""
    with open(task.volume.root / "logs" / f"{stream}.txt", "ab") as handle:
        handle.write(data)


def test_a_restarted_sidecar_carries_on_where_it_was(task: Task) -> None:
    staged(task, [])
    append(task, "stdout", b"abc")
    first = task.sidecar()
    wait_for_log(task, "stdout", b"abc")
    first.kill()
    first.communicate()
    append(task, "stdout", b"def\n")
    (task.volume.state / "exit").write_text("0\n")
    result, _ = task.finish(task.sidecar(), timeout=60)
    assert task.log("stdout") == b"abcdef\n"
    assert result["logs"]["stdout"] == 7


def test_a_group_restarted_on_an_emptied_volume_keeps_both_runs_in_order(task: Task) -> None:
    staged(task, [])
    first = task.sidecar()
    append(task, "stdout", b"first run\n")
    wait_for_log(task, "stdout", b"first run\n")
    first.kill()  # the whole group goes; its emptyDir comes back empty
    first.communicate()
    shutil.rmtree(task.volume.root)
    task.volume.agent("stage-in")
    second = task.sidecar()
    assert task.volume.wrap("/bin/sh", "-c", "echo second run; echo oops >&2").wait(30) == 0
    result, _ = task.finish(second, timeout=60)
    kept = task.log("stdout")
    assert kept.startswith(b"first run\n")
    assert kept.endswith(b"\nsecond run\n")
    note = kept[len(b"first run\n") : -len(b"second run\n")]
    assert b"restarted" in note
    assert note.endswith(b"\n")
    assert not note.startswith(b"\n")  # the earlier run's log ended with a newline: no blank line is added
    assert task.log("stderr") == b"oops\n"  # nothing came before it: no note
    assert result["logs"] == {"stdout": len(kept), "stderr": 5}


def test_a_base_the_command_overwrote_with_junk_starts_the_stream_afresh(task: Task) -> None:
    staged(task, [])
    first = task.sidecar()
    append(task, "stdout", b"one\n")
    wait_for_log(task, "stdout", b"one\n")
    first.kill()
    first.communicate()
    (task.volume.state / "stdout.logbase").write_text("not a number")
    (task.volume.state / "exit").write_text("0\n")
    task.finish(task.sidecar(), timeout=60)
    kept = task.log("stdout")
    # The volume's file is appended again after a note rather than lost or spliced at a made-up offset.
    assert kept.startswith(b"one\n") and kept.endswith(b"\none\n") and b"restarted" in kept
