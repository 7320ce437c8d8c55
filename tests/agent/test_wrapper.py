"""The POSIX sh wrapper around the user's command, run by /bin/sh as a real process on a temp volume."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from tests.agent.conftest import Volume


def staged(volume: Volume, ok: bool = True) -> Volume:
    """A volume as stage-in leaves it (the real stage-in, with a manifest that has no inputs)."""
    volume.write_manifest({})
    volume.agent("stage-in")
    if not ok:
        (volume.state / "stagein.json").write_text(json.dumps({"ok": False, "file": "a", "message": "HTTP 404"}) + "\n")
    return volume


def counting(volume: Volume, code: int) -> list[str]:
    """A user command that counts its runs in wd/runs, writes to both streams and exits with `code`."""
    return ["/bin/sh", "-c", f'echo run >> "{volume.wd}/runs"; echo out; echo err >&2; exit {code}']


def test_records_the_exit_code_and_appends_both_streams(volume: Volume) -> None:
    staged(volume)
    assert volume.run.stat().st_mode & 0o777 == 0o755
    assert volume.wrap(*counting(volume, 3)).wait(timeout=30) == 3
    assert (volume.state / "exit").read_text() == "3\n"
    assert (volume.root / "logs" / "stdout.txt").read_text() == "out\n"
    assert (volume.root / "logs" / "stderr.txt").read_text() == "err\n"


def test_a_restarted_container_replays_the_code_and_never_runs_the_command_twice(volume: Volume) -> None:
    staged(volume)
    assert volume.wrap(*counting(volume, 5)).wait(timeout=30) == 5
    assert volume.wrap(*counting(volume, 0)).wait(timeout=30) == 5
    assert (volume.wd / "runs").read_text() == "run\n"


def test_a_container_killed_mid_run_is_recorded_as_killed_not_rerun(volume: Volume) -> None:
    staged(volume)
    (volume.state / "started").write_text("")  # a run began and its container died before recording an exit
    assert volume.wrap(*counting(volume, 0)).wait(timeout=30) == 137
    assert (volume.state / "exit").read_text() == "137\n"
    assert not (volume.wd / "runs").exists()


def test_a_failed_stage_in_runs_nothing_and_exits_zero(volume: Volume) -> None:
    staged(volume, ok=False)
    assert volume.wrap(*counting(volume, 4)).wait(timeout=30) == 0
    assert not (volume.wd / "runs").exists()
    assert not (volume.state / "exit").exists()


def test_no_stage_in_at_all_runs_nothing(volume: Volume) -> None:
    volume.root.mkdir()
    (volume.root / "bin").mkdir()
    wrapper = Path(__file__).resolve().parents[2] / "agent" / "acibatch_agent" / "run.sh"
    volume.run.write_bytes(wrapper.read_bytes())
    assert volume.wrap("/bin/sh", "-c", f"touch {volume.root}/ran").wait(timeout=30) == 0
    assert not (volume.root / "ran").exists()


def test_sigterm_stops_the_command_and_records_143(volume: Volume) -> None:
    staged(volume)
    process = volume.wrap("/bin/sh", "-c", f'echo started > "{volume.wd}/flag"; exec sleep 60')
    deadline = time.monotonic() + 20
    while not (volume.wd / "flag").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 143
    assert (volume.state / "exit").read_text() == "143\n"


def test_the_heartbeat_runs_while_the_command_does(volume: Volume) -> None:
    staged(volume)
    process = volume.wrap("/bin/sh", "-c", "sleep 1")
    deadline = time.monotonic() + 10
    while not (volume.state / "alive").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (volume.state / "alive").exists()
    assert process.wait(timeout=20) == 0


def descendants(pid: int) -> dict[int, list[str]]:
    """The processes below `pid`, with their command lines, from /proc."""
    parents: dict[int, int] = {}
    commands: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            commands[int(entry.name)] = (entry / "cmdline").read_bytes().decode(errors="replace").split("\x00")[:-1]
        except OSError:
            continue
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found = {}
    for child in parents:
        ancestor = parents.get(child)
        while ancestor and ancestor != pid:
            ancestor = parents.get(ancestor)
        if ancestor == pid:
            found[child] = commands.get(child, [])
    return found


def test_the_heartbeat_survives_its_sleep_being_killed(volume: Volume) -> None:
    staged(volume)
    process = volume.wrap("/bin/sh", "-c", "sleep 6")  # the user's command: not the heartbeat's `sleep 5`
    try:
        alive = volume.state / "alive"
        deadline = time.monotonic() + 10
        heartbeat: list[int] = []
        while not heartbeat and time.monotonic() < deadline:
            heartbeat = [pid for pid, argv in descendants(process.pid).items() if argv == ["sleep", "5"]]
            time.sleep(0.05)
        assert heartbeat and alive.exists()
        old = time.time() - 100
        os.utime(alive, (old, old))
        for pid in heartbeat:
            os.kill(pid, signal.SIGKILL)  # what a command that kills every `sleep` it sees does
        deadline = time.monotonic() + 3
        while alive.stat().st_mtime < old + 50 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert alive.stat().st_mtime > old + 50  # touched again at once: the heartbeat goes on
    finally:
        assert process.wait(timeout=20) == 0
