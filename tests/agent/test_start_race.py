"""The sidecar giving up on a wrapper that has not begun, and the wrapper starting late or at the same moment: the
user's command never runs after the attempt was reported as never started, and never is taken for one that did not
start. The wrapper runs as a real /bin/sh process; the sidecar runs in this process so the race can be staged."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from acibatch_agent import sidecar
from acibatch_agent.layout import Layout

from tests.agent.conftest import Volume


@pytest.fixture
def staged(volume: Volume) -> Volume:
    volume.write_manifest({})
    volume.agent("stage-in")
    return volume


def run_sidecar(volume: Volume, monkeypatch: pytest.MonkeyPatch, start_timeout: float = 0.5) -> dict[str, Any]:
    monkeypatch.setattr(sidecar, "START_TIMEOUT", start_timeout)
    layout = Layout(str(volume.root), str(volume.secrets))
    return sidecar.Sidecar(layout, {"version": 1, "attempt": 1, "logs": {}}).run()


def counting(volume: Volume) -> list[str]:
    return ["/bin/sh", "-c", f'echo ran >> "{volume.wd}/runs"; echo user output; exit 0']


def test_a_wrapper_that_starts_after_the_sidecar_gave_up_runs_nothing(
    staged: Volume, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The task container's image pull finishes only after the sidecar reported the attempt as never started.
    result = run_sidecar(staged, monkeypatch)
    assert result["failure"]["category"] == "preProcessingError"
    assert (staged.state / "exit").read_text() == "127 not-started\n"
    assert staged.wrap(*counting(staged)).wait(timeout=30) == 127
    assert not (staged.wd / "runs").exists()
    assert (staged.root / "logs" / "stdout.txt").read_bytes() == b""
    assert staged.wrap(*counting(staged)).wait(timeout=30) == 127  # and again on an ACI restart


def wait_in_fifo_open(pid: int) -> None:
    """Until the process blocks opening a FIFO no one reads (the kernel's wait for the other end)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if "partner" in Path(f"/proc/{pid}/wchan").read_text():
                return
        except OSError:
            pass
        time.sleep(0.02)
    raise AssertionError("the wrapper never reached its start record")


def test_a_wrapper_that_begins_as_the_sidecar_gives_up_takes_its_start_back(staged: Volume) -> None:
    # `started` as a FIFO holds the wrapper inside `: > started` (its test `-f` is false for a FIFO) until this
    # test opens it: the sidecar's record lands between the wrapper's start record and its second look.
    started = staged.state / "started"
    os.mkfifo(started)
    wrapper = staged.wrap(*counting(staged))
    wait_in_fifo_open(wrapper.pid)
    (staged.state / "exit").write_text("127 not-started\n")
    with open(started, "rb"):
        pass
    assert wrapper.wait(timeout=30) == 127
    assert not (staged.wd / "runs").exists()
    assert not started.exists() and (staged.state / "withdrawn").exists()


def test_a_sidecar_that_gives_up_as_the_wrapper_withdraws_reports_never_started(
    staged: Volume, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_give_up = sidecar.give_up

    def wrapper_begins_first(layout: Layout) -> bool:
        Path(layout.started).touch()  # the wrapper's start record, just before the sidecar's exit record
        placed = real_give_up(layout)

        def withdraw() -> None:  # the wrapper's second look finds the record: it takes its start back
            time.sleep(0.3)
            os.rename(layout.started, os.path.join(layout.state, "withdrawn"))

        threading.Thread(target=withdraw).start()
        return placed

    monkeypatch.setattr(sidecar, "give_up", wrapper_begins_first)
    result = run_sidecar(staged, monkeypatch)
    assert result["exitCode"] is None
    assert result["failure"]["category"] == "preProcessingError"


def test_a_sidecar_that_gives_up_after_the_wrapper_got_in_waits_for_the_real_exit(
    staged: Volume, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_give_up = sidecar.give_up

    def wrapper_got_in(layout: Layout) -> bool:
        Path(layout.started).touch()  # the wrapper began and looked for a record before the sidecar wrote one
        placed = real_give_up(layout)

        def command_ends() -> None:  # ...so it runs the command and records its code the wrapper's way (mv)
            time.sleep(1.0)
            temporary = layout.exit + ".tmp"
            Path(temporary).write_text("4\n")
            os.replace(temporary, layout.exit)

        threading.Thread(target=command_ends).start()
        return placed

    monkeypatch.setattr(sidecar, "give_up", wrapper_got_in)
    result = run_sidecar(staged, monkeypatch)
    assert (result["exitCode"], result["failure"]) == (4, None)


def test_the_sidecar_never_overwrites_a_record_the_wrapper_just_wrote(staged: Volume) -> None:
    layout = Layout(str(staged.root), str(staged.secrets))
    (staged.state / "exit").write_text("0\n")
    assert sidecar.give_up(layout) is False
    assert (staged.state / "exit").read_text() == "0\n"
    assert sorted(path.name for path in staged.state.iterdir() if "gaveup" in path.name) == []


def test_the_heartbeat_outlives_a_sidecar_record_while_the_command_runs(staged: Volume) -> None:
    # The wrapper got in first and the sidecar's record is there: the heartbeat must go on (it no longer stops at
    # the first state/exit), or the sidecar would take the running command for a dead container.
    wrapper = staged.wrap("/bin/sh", "-c", f'echo 127 not-started > "{staged.state}/exit"; sleep 7')
    alive = staged.state / "alive"
    deadline = time.monotonic() + 10
    while not alive.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    first = alive.stat().st_mtime
    time.sleep(5.5)
    assert alive.stat().st_mtime > first
    assert wrapper.wait(timeout=20) == 0
    assert (staged.state / "exit").read_text() == "0\n"


def test_a_sleep_that_always_fails_turns_the_heartbeat_off_instead_of_spinning(staged: Volume, tmp_path: Path) -> None:
    broken = tmp_path / "bin"
    broken.mkdir()
    (broken / "sleep").write_text("#!/bin/sh\nexit 1\n")
    (broken / "sleep").chmod(0o755)
    path = f"{broken}:{os.environ['PATH']}"
    # The command waits for the heartbeat to give up (it needs no `sleep` of its own to do so).
    script = f'while [ "$(cat "{staged.state}/alive" 2>/dev/null)" != off ]; do :; done'
    assert staged.wrap("/bin/sh", "-c", script, PATH=path).wait(timeout=20) == 0
    assert (staged.state / "alive").read_text() == "off\n"
