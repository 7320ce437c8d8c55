"""Create a secret-holding file once, readable by its owner only from the first byte."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

OWNER_ONLY = 0o600


def create_private(path: Path, text: str) -> bool:
    """Write `text` to `path` unless it exists; True when this call created it.

    The text goes to a private temporary file first (owner-only mode from its creation, so never readable by
    others even briefly), which is then linked into place: a link fails when the name exists, so two processes
    started on one folder at once agree on one file, and neither reads a half-written one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, OWNER_ONLY)
    try:
        with os.fdopen(descriptor, "w") as stream:
            stream.write(text)
        os.link(temporary, path)
    except FileExistsError:
        return False
    finally:
        temporary.unlink(missing_ok=True)
    return True
