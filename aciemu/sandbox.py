"""Run a container's command as a sandboxed local process, and make sure every process is gone afterwards.

With bubblewrap installed a container sees what a container image would give it and nothing of the host's
files: an empty root with the host's system programs and libraries read-only (/usr and its /bin, /lib
links), the few /etc files that name resolution, TLS and user lookups read, a synthesized /etc/passwd and
/etc/group, its own writable home (`CONTAINER_HOME`, also its working directory unless the image maps one)
and private /tmp, a /proc of its own PID namespace and a minimal /dev. The image's files, when the image
catalog maps the image to a host directory, appear read-only at the image's working directory. Nothing of
the emulator's data (other groups' files, their secure values), devhost's data, the checkout or $HOME is
mounted. The network is shared so containers can call back to 127.0.0.1.

Without bubblewrap a container is a plain process in its own session that can read everything the
emulator can (the emulator warns loudly at start); every process carries a marker in its environment so
`kill_marked` can find detached grandchildren (`setsid`, double forks) by scanning /proc. Memory is
limited with RLIMIT_AS from `memoryInGB` (set by util-linux `prlimit` when installed, so the emulator can
start children with vfork).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import shutil
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

MARKER_VAR = "ACIEMU_PROCESS_MARKER"
GIB = 1024**3
# Interpreters reserve address space well beyond what they use; never go below this floor.
MIN_ADDRESS_SPACE = 2 * GIB
# A secret volume's files: readable by the container's user only, as a key file should be.
SECRET_FILE_MODE = "0400"

# Inside the sandbox: the container's writable home, and the PATH a typical Linux image sets.
CONTAINER_HOME = "/home/aci"
CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Top-level system directories; on merged-/usr hosts most are symlinks into /usr and are recreated as such.
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# What name resolution, TLS, time zones, the dynamic linker and Debian's alternatives read from /etc.
# Host secrets (/etc/shadow, ssh keys, machine credentials) are deliberately absent.
SYSTEM_ETC = (
    "/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf", "/etc/host.conf", "/etc/gai.conf", "/etc/services",
    "/etc/protocols", "/etc/localtime", "/etc/timezone", "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d",
    "/etc/alternatives", "/etc/ssl", "/etc/ca-certificates", "/etc/ca-certificates.conf", "/etc/pki",
    "/etc/crypto-policies", "/etc/mime.types",
)  # fmt: skip


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


@dataclass(frozen=True)
class VolumeMount:
    """A volume as one container sees it at `path`: a host folder bound there (an emptyDir, shared by every
    container of the group that mounts it), or files given from memory (a secret volume, never written to a
    host disk: bubblewrap copies each from an anonymous memory file into the sandbox's own tmpfs)."""

    path: str
    read_only: bool
    host_dir: Path | None = None
    files: Mapping[str, bytes] | None = None


@dataclass(frozen=True)
class ContainerFiles:
    """Where one container's files live on the host, and where its image's files appear inside.

    `home` and `tmp` are the container's own writable directories; `etc` holds the synthesized passwd and
    group files; `image_dir` (read-only) shows up at `image_workdir`, which is then the working directory;
    `mounts` are the group volumes the container mounts (bubblewrap only).
    """

    home: Path
    tmp: Path
    etc: Path
    image_dir: Path | None = None
    image_workdir: str | None = None
    mounts: tuple[VolumeMount, ...] = ()


def write_identity_files(etc: Path) -> None:
    """A minimal /etc/passwd and /etc/group naming root and the user the containers run as (not the host's)."""
    etc.mkdir(parents=True, exist_ok=True)
    uid, gid = os.getuid(), os.getgid()
    users = [f"root:x:0:0:root:{CONTAINER_HOME if uid == 0 else '/root'}:/bin/sh"]
    groups = ["root:x:0:"]
    if uid != 0:
        users.append(f"aci:x:{uid}:{gid}:aci:{CONTAINER_HOME}:/bin/sh")
    if gid != 0:
        groups.append(f"aci:x:{gid}:")
    (etc / "passwd").write_text("\n".join(users) + "\n")
    (etc / "group").write_text("\n".join(groups) + "\n")


@cache
def system_mounts() -> tuple[str, ...]:
    """bubblewrap arguments for the host's system directories and /etc pieces (computed once per process)."""
    args: list[str] = []
    for path in SYSTEM_DIRS:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    for path in SYSTEM_ETC:
        if os.path.exists(path):
            args += ["--ro-bind", path, path]
    return tuple(args)


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


def working_dir(files: ContainerFiles, use_bwrap: bool) -> str:
    """The container's working directory as the container sees it."""
    if files.image_dir is not None:
        return (files.image_workdir or "/") if use_bwrap else str(files.image_dir)
    return CONTAINER_HOME if use_bwrap else str(files.home)


def sandboxed_argv(argv: Sequence[str], files: ContainerFiles, use_bwrap: bool, fds: Sequence[int] = ()) -> list[str]:
    """The command under bubblewrap (or as is without it). `fds`: one readable descriptor per secret file of
    `files.mounts`, in their order (see `secret_fds`)."""
    if not use_bwrap:
        return list(argv)
    bwrap = bwrap_path()
    assert bwrap is not None
    image: list[str] = []
    if files.image_dir is not None:
        image = ["--ro-bind", str(files.image_dir), files.image_workdir or "/"]
    return [
        bwrap, *system_mounts(),
        "--ro-bind", str(files.etc / "passwd"), "/etc/passwd", "--ro-bind", str(files.etc / "group"), "/etc/group",
        "--proc", "/proc", "--dev", "/dev",
        "--bind", str(files.home), CONTAINER_HOME, "--bind", str(files.tmp), "/tmp", *image,
        *volume_args(files.mounts, fds),
        "--chdir", working_dir(files, use_bwrap),
        "--unshare-pid", "--unshare-ipc", "--die-with-parent", "--new-session", "--", *argv,
    ]  # fmt: skip


def volume_args(mounts: Sequence[VolumeMount], fds: Sequence[int]) -> list[str]:
    """bubblewrap arguments for the volumes: an emptyDir is a bind of its host folder; a secret volume is a
    tmpfs holding each file (mode 0400, copied in from its descriptor), then made read-only as a whole."""
    args: list[str] = []
    remaining = iter(fds)
    for mount in mounts:
        if mount.host_dir is not None:
            args += ["--ro-bind" if mount.read_only else "--bind", str(mount.host_dir), mount.path]
            continue
        args += ["--tmpfs", mount.path]
        for name in mount.files or {}:
            args += ["--perms", SECRET_FILE_MODE, "--ro-bind-data", str(next(remaining)), f"{mount.path}/{name}"]
        args += ["--remount-ro", mount.path]
    return args


def secret_fds(mounts: Sequence[VolumeMount]) -> list[int]:
    """One anonymous memory file per secret file, rewound, for bubblewrap to copy in: the secret touches no disk
    and no named tmpfs path. The caller closes them once the sandbox has started."""
    fds: list[int] = []
    try:
        for mount in mounts:
            for name, data in (mount.files or {}).items():
                fd = os.memfd_create(f"aciemu-secret-{name}", 0)  # no MFD_CLOEXEC: the child must inherit it
                fds.append(fd)
                _write_all(fd, data)
                os.lseek(fd, 0, os.SEEK_SET)
    except OSError:
        for fd in fds:
            os.close(fd)
        raise
    return fds


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def base_env(files: ContainerFiles, use_bwrap: bool) -> dict[str, str]:
    """PATH and HOME as the container sees them (a sandboxed container cannot use the host's PATH entries)."""
    if use_bwrap:
        return {"PATH": CONTAINER_PATH, "HOME": CONTAINER_HOME}
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(files.home), "TMPDIR": str(files.tmp)}


def fresh_folders(files: ContainerFiles, discard: Callable[[Path], None]) -> None:
    """Every start (a restart too) begins from the image again, as in ACI: nothing an earlier run wrote survives.

    On the event loop, and cheap: `discard` moves an earlier run's folder aside (one rename into the emulator's
    trash, whose thread deletes it), then the new folder is made. Deleting it here stalled every other request and
    container start behind a busy disk; deleting it on another thread let a delete of the group run in between,
    after which that thread made the deleted group's folders again."""
    for folder in (files.home, files.tmp):
        discard(folder)
        folder.mkdir(parents=True)


async def spawn(
    argv: Sequence[str],
    env: Mapping[str, str],
    files: ContainerFiles,
    log_path: Path,
    memory_gb: float,
    marker: str,
    use_bwrap: bool,
    discard: Callable[[Path], None],
) -> asyncio.subprocess.Process:
    """Start the container's process in fresh folders; `discard` takes an earlier run's folder out of the way."""
    fresh_folders(files, discard)
    full_env = {**base_env(files, use_bwrap), **env, MARKER_VAR: marker}
    fds = secret_fds(files.mounts) if use_bwrap else []
    try:
        command, preexec = limited_argv(sandboxed_argv(argv, files, use_bwrap, fds), memory_gb)
        with open(log_path, "ab") as log:
            return await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                env=full_env,
                # bubblewrap itself starts in the container's home; the container's view is set by --chdir.
                cwd=str(files.home) if use_bwrap else working_dir(files, use_bwrap),
                start_new_session=True,
                preexec_fn=preexec,
                pass_fds=fds,
            )
    finally:
        for fd in fds:  # bubblewrap has its own copies (it reads them while setting up the sandbox)
            os.close(fd)


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
