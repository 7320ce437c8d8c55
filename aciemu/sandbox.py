"""Run a container's command as a sandboxed local process, and make sure every process is gone afterwards.

With bubblewrap installed the command runs in its own PID namespace (`--unshare-pid --die-with-parent`),
with a read-only view of the host (including /tmp, where a checkout may live) and a writable working directory
that is also its TMPDIR; network is shared so
containers can call back to 127.0.0.1. Without bubblewrap it runs in a new session (process group), and
every process carries a marker in its environment so `kill_marked` can find detached grandchildren
(`setsid`, double forks) by scanning /proc. Memory is limited with RLIMIT_AS from `memoryInGB` (set by
util-linux `prlimit` when installed, so the emulator can start children with vfork).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import shutil
import signal
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

MARKER_VAR = "ACIEMU_PROCESS_MARKER"
GIB = 1024**3
# Interpreters reserve address space well beyond what they use; never go below this floor.
MIN_ADDRESS_SPACE = 2 * GIB


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


def _address_space(memory_gb: float) -> int:
    return max(MIN_ADDRESS_SPACE, int(memory_gb * GIB * 2))


def _limits(memory_gb: float) -> Callable[[], None]:
    address_space = _address_space(memory_gb)

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


def limited_argv(argv: Sequence[str], memory_gb: float) -> tuple[list[str], Callable[[], None] | None]:
    """The command with its rlimits applied: by util-linux `prlimit` when present, else in `preexec_fn`.

    `prlimit` keeps `preexec_fn` unset, which lets subprocess start the child with vfork instead of fork:
    forking the emulator's whole address space for every container was its largest cost under load.
    """
    prlimit = shutil.which("prlimit")
    if prlimit is None:
        return list(argv), _limits(memory_gb)
    return [prlimit, f"--as={_address_space(memory_gb)}", "--core=0", "--", *argv], None


def sandboxed_argv(argv: Sequence[str], workdir: Path, use_bwrap: bool) -> list[str]:
    if not use_bwrap:
        return list(argv)
    bwrap = bwrap_path()
    assert bwrap is not None
    return [
        bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
        "--bind", str(workdir), str(workdir), "--chdir", str(workdir),
        "--unshare-pid", "--die-with-parent", "--new-session", "--", *argv,
    ]  # fmt: skip


async def spawn(
    argv: Sequence[str],
    env: Mapping[str, str],
    workdir: Path,
    log_path: Path,
    memory_gb: float,
    marker: str,
    use_bwrap: bool,
) -> asyncio.subprocess.Process:
    workdir.mkdir(parents=True, exist_ok=True)
    full_env = {"TMPDIR": str(workdir), **env, MARKER_VAR: marker}
    command, preexec = limited_argv(sandboxed_argv(argv, workdir, use_bwrap), memory_gb)
    with open(log_path, "ab") as log:
        return await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            env=full_env,
            cwd=str(workdir),
            start_new_session=True,
            preexec_fn=preexec,
        )


def marked_pids(marker: str) -> list[int]:
    """Processes whose environment carries `marker` (they may have left the process group)."""
    needle = f"{MARKER_VAR}={marker}".encode()
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            pids.append(int(entry))
    return pids


def kill_marked(marker: str, use_bwrap: bool = False) -> None:
    """SIGKILL every process carrying `marker`.

    Under bubblewrap there is nothing to sweep: the PID namespace dies with its first process, and the kernel
    kills everything left in it. Scanning /proc after every container was most of the emulator's time.
    """
    if use_bwrap:
        return
    for pid in marked_pids(marker):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


async def terminate(
    process: asyncio.subprocess.Process, marker: str, grace_seconds: float = 2.0, use_bwrap: bool = False
) -> int | None:
    """SIGTERM the process group, SIGKILL what is left after the grace period, then sweep by marker."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), grace_seconds)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    kill_marked(marker, use_bwrap)
    return process.returncode
