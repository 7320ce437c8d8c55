"""Where things are on the shared volume, and reading the manifest the app put in the secret volume."""

from __future__ import annotations

import json
import os
import re
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
        self.reported = os.path.join(self.state, "reported")
        self.manifest = os.path.join(self.secrets, "manifest.json")

    def log(self, stream: str) -> str:
        return os.path.join(self.logs, f"{stream}.txt")


def load_manifest(layout: Layout) -> dict[str, Any]:
    with open(layout.manifest, encoding="utf-8") as handle:
        manifest: dict[str, Any] = json.load(handle)
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


def open_inside(path: str, base: str) -> BinaryIO:
    """Open `path` for reading only if the file actually opened lies under `base`. The user's command can write
    the shared volume and could swap a file or a folder for a link to the secret volume at any moment, so the
    check is made on the open descriptor (through /proc), not on the name before opening."""
    handle = open(path, "rb")  # noqa: SIM115 -- returned to the caller, who closes it
    try:
        opened = os.readlink(f"/proc/self/fd/{handle.fileno()}")
    except OSError:
        opened = os.path.realpath(path)  # no /proc: the best check there is
    real_base = os.path.realpath(base).rstrip(os.sep) + os.sep
    if not opened.startswith(real_base):
        handle.close()
        raise PermissionError(f"{os.path.relpath(path, base)!r} leads outside {base}")
    return handle
