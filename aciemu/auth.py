"""The bearer token aciemu requires on its ARM API, as real ARM requires an Entra ID access token.

Containers share the host's loopback network (they call devhost back on 127.0.0.1), so without a token any
tenant's container could list, read and delete other tenants' container groups through the emulator. The token
comes from `--token` / `ACIEMU_TOKEN`, else it is made once per data folder and kept in `<data>/token` (owner
only, outside every container's view), so a restart on the same folder keeps the app's setting valid.

Refusals use ARM's gateway answers: 401 with the ARM error envelope, `AuthenticationFailed` when the header is
missing or not `Bearer <token>`, `InvalidAuthenticationToken` when the token is not the one expected.
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

from localtools.privatefile import OWNER_ONLY, create_private

ENV = "ACIEMU_TOKEN"
FILE_NAME = "token"
SCHEME = "bearer"  # the scheme compares case-insensitively (RFC 9110 section 11.1)


class TokenFileInvalid(RuntimeError):
    """The stored token cannot be used; the message names the file and what to do."""


class Unauthenticated(Exception):
    """A request without a valid token: ARM's status, code and message for it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = 401, code, message


def token_file(data_dir: Path) -> Path:
    return data_dir / FILE_NAME


def read(data_dir: Path) -> str | None:
    """The stored token of a data folder, or None when aciemu has not made one there yet."""
    path = token_file(data_dir)
    try:
        value = path.read_text().strip()
    except FileNotFoundError:
        return None
    if not value:
        raise TokenFileInvalid(f"{path} is empty; delete it to make a new token")
    return value


def load_or_create(data_dir: Path, given: str | None = None) -> str:
    """The token to require: `given` (flag or env), else the stored one, else a new one stored now."""
    if given and given.strip():
        return given.strip()
    existing = read(data_dir)
    if existing is not None:
        os.chmod(token_file(data_dir), OWNER_ONLY)  # a copied or older file may have been readable by others
        return existing
    value = secrets.token_urlsafe(32)
    # Two emulators started on one folder at once agree on one token: the second finds the first's file.
    return value if create_private(token_file(data_dir), value) else load_or_create(data_dir)


def check(authorization: str | None, token: str) -> None:
    """Raise `Unauthenticated` unless `authorization` is `Bearer <token>` (compared in constant time)."""
    if authorization is None:
        raise Unauthenticated("AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.")
    scheme, _, presented = authorization.strip().partition(" ")
    if scheme.lower() != SCHEME or not presented.strip():
        raise Unauthenticated(
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is provided in an invalid format.",
        )
    if not hmac.compare_digest(presented.strip().encode(), token.encode()):
        raise Unauthenticated("InvalidAuthenticationToken", "The access token is invalid.")
