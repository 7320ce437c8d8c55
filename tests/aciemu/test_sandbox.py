"""How aciemu applies a container's limits: util-linux prlimit when installed, else a preexec hook."""

from __future__ import annotations

import pytest

from aciemu import sandbox


def test_prlimit_wraps_the_command_so_no_preexec_hook_is_needed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: "/usr/bin/prlimit" if name == "prlimit" else None)
    argv, preexec = sandbox.limited_argv(["sleep", "1"], memory_gb=4)
    assert argv == ["/usr/bin/prlimit", f"--as={8 * sandbox.GIB}", "--core=0", "--", "sleep", "1"]
    assert preexec is None


def test_without_prlimit_the_limits_are_set_in_the_child(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    argv, preexec = sandbox.limited_argv(["sleep", "1"], memory_gb=0.5)
    assert argv == ["sleep", "1"] and preexec is not None


def test_the_proc_sweep_is_skipped_under_bubblewrap(monkeypatch: pytest.MonkeyPatch) -> None:
    scanned: list[str] = []
    monkeypatch.setattr(sandbox, "marked_pids", lambda marker: scanned.append(marker) or [])
    sandbox.kill_marked("m1", use_bwrap=True)
    sandbox.kill_marked("m2", use_bwrap=False)
    assert scanned == ["m2"]
