"""The Durable extension's system key (`durabletask_extension`): made once per data folder, checked on the
Durable HTTP API, handed to the app inside its client binding.

The Functions host creates this key on demand the first time the extension asks for its webhook URL, keeps it
with the host's other secrets, and authorises `/runtime/webhooks/durabletask/...` only for a caller presenting it
(or the master key, which devhost does not have) in the `x-functions-key` header or the `code` query parameter;
the header wins when both are sent. devhost keeps it in `<data>/system-keys.json`, readable by its owner only,
so a restart on the same data folder keeps the URLs it handed out valid.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from localtools.privatefile import OWNER_ONLY, create_private

KEY_NAME = "durabletask_extension"
SETTING = "DEVHOST_DURABLE_SYSTEM_KEY"  # a fixed key instead of the stored one (e.g. shared with a tool)
FILE_NAME = "system-keys.json"
HEADER = "x-functions-key"
QUERY = "code"


class SystemKeyError(RuntimeError):
    """The stored key file cannot be used; the message says which file and why."""


def key_file(data_dir: Path) -> Path:
    return data_dir / FILE_NAME


def read(data_dir: Path, environ: Mapping[str, str] = os.environ) -> str | None:
    """The key devhost uses for this data folder, or None when it has never run there (tools, tests)."""
    override = environ.get(SETTING, "").strip()
    if override:
        return override
    path = key_file(data_dir)
    try:
        stored = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise SystemKeyError(f"{path} is not readable JSON ({error}); delete it to make a new key") from None
    value = stored.get(KEY_NAME) if isinstance(stored, dict) else None
    if not isinstance(value, str) or not value:
        raise SystemKeyError(f"{path} has no '{KEY_NAME}' key; delete it to make a new key")
    return value


def load_or_create(data_dir: Path, environ: Mapping[str, str] = os.environ) -> str:
    """The key for this data folder: the setting's, the stored one, or a new one stored now."""
    existing = read(data_dir, environ)
    if existing is not None:
        if not environ.get(SETTING, "").strip():
            os.chmod(key_file(data_dir), OWNER_ONLY)  # an older or copied file may have been readable by others
        return existing
    value = secrets.token_urlsafe(40)
    # Two devhosts started on one folder at once agree on one key: the second finds the first's file.
    if create_private(key_file(data_dir), json.dumps({KEY_NAME: value})):
        return value
    return load_or_create(data_dir, environ)


def presented(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """The key a request carries: the header when present (even empty), else the query parameter."""
    if HEADER in headers:
        return headers[HEADER]
    return query.get(QUERY)


def matches(candidate: str | None, key: str) -> bool:
    return candidate is not None and hmac.compare_digest(candidate.encode(), key.encode())
