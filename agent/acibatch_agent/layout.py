"""Where things are on the shared volume, and reading the manifest the app put in the secret volume."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import stat
import tempfile
from typing import Any, BinaryIO
from urllib.parse import urlsplit, urlunsplit

MANIFEST_VERSION = 1


class Layout:
    """Paths of the shared `emptyDir` volume. Tests point ACIBATCH_ROOT / ACIBATCH_SECRETS at temp dirs."""

    def __init__(self, root: str | None = None, secrets: str | None = None) -> None:
        self.root = root or os.environ.get("ACIBATCH_ROOT", "/acibatch")
        self.secrets = secrets or os.environ.get("ACIBATCH_SECRETS", "/acibatch-secrets")
        self.wd = os.path.join(self.root, "wd")
        self.bin = os.path.join(self.root, "bin")
        self.run = os.path.join(self.bin, "run")
        self.logs = os.path.join(self.root, "logs")
        self.state = os.path.join(self.root, "state")
        self.stagein = os.path.join(self.state, "stagein.json")
        self.exit = os.path.join(self.state, "exit")
        self.started = os.path.join(self.state, "started")
        self.alive = os.path.join(self.state, "alive")
        self.manifest = os.path.join(self.secrets, "manifest.json")

    def log(self, stream: str) -> str:
        return os.path.join(self.logs, f"{stream}.txt")

    def log_base(self, stream: str) -> str:
        """Where the sidecar records how many bytes of the stream's blob came before this volume's log file."""
        return os.path.join(self.state, f"{stream}.logbase")

    def reported(self, manifest_bytes: bytes, run: str) -> str:
        """The sidecar's "report sent" marker. It lives in the agent container's own temp folder, which the
        user's container cannot write (state/ is writable by it, and a marker planted there would silence the
        agent); it is named after the attempt's manifest so a temp folder shared by accident (a host running
        the agent by hand) never mixes two attempts, and after the run id stage-in drew for this start of the
        group: a temp folder that survives a restart whose shared volume came back empty (stage-in ran again)
        must not silence the new run's sidecar, whose logs would then never be streamed."""
        digest = hashlib.sha256(manifest_bytes + b"\0" + run.encode()).hexdigest()[:24]
        return os.path.join(tempfile.gettempdir(), f"acibatch-agent-reported-{digest}")


def load_manifest(layout: Layout) -> dict[str, Any]:
    with open(layout.manifest, "rb") as handle:
        return parse_manifest(handle.read())


def parse_manifest(data: bytes) -> dict[str, Any]:
    manifest = json.loads(data)
    if not isinstance(manifest, dict):
        raise ValueError("the manifest is not a JSON object")
    if manifest.get("version") != MANIFEST_VERSION:
        raise ValueError(f"manifest version {manifest.get('version')!r} is not {MANIFEST_VERSION}")
    return manifest


def redact(url: str) -> str:
    """The URL without its query string: a SAS must never reach a log, a message or result.json."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


_QUERY = re.compile(r"\?[^\s'\"]*")


def scrub(text: str) -> str:
    """Any query string inside free text (an exception's message may quote a URL) replaced by `?...`."""
    return _QUERY.sub("?...", text)


def open_regular(path: str) -> BinaryIO:
    """Open `path` for reading if it is a regular file. The user's command can put a FIFO (or a device) where a
    file of the shared volume was: opening it non-blocking and checking the open descriptor means such a swap
    can never hang the sidecar (a FIFO's open or read would wait for a writer forever)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", path)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_small(path: str, limit: int = 64 * 1024) -> bytes | None:
    """The first `limit` bytes of a small state file the user's container can also write; None when it is
    missing or not a regular file."""
    try:
        with open_regular(path) as handle:
            return handle.read(limit)
    except OSError:
        return None


def write_new(path: str, data: bytes) -> None:
    """Replace `path` atomically with a new file holding `data`. The temp file is created afresh (never opened
    where the user's container may have put a FIFO or a link) and renamed over `path`."""
    temporary = f"{path}.{os.getpid()}.tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temporary)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(temporary, path)


def open_inside(path: str, base: str) -> BinaryIO:
    """Open `path` for reading only if it is a regular file and the file actually opened lies under `base`. The
    user's command can write the shared volume and could swap a file or a folder for a link to the secret volume
    at any moment, so the check is made on the open descriptor (through /proc), not on the name before opening."""
    handle = open_regular(path)
    try:
        opened = os.readlink(f"/proc/self/fd/{handle.fileno()}")
    except OSError:
        opened = os.path.realpath(path)  # no /proc: the best check there is
    real_base = os.path.realpath(base).rstrip(os.sep) + os.sep
    if not opened.startswith(real_base):
        handle.close()
        raise PermissionError(f"{os.path.relpath(path, base)!r} leads outside {base}")
    return handle
