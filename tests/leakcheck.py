"""Finding storage credentials where they must not be: in the answers a client saw, and in the files of a local
stack (devhost's, aciemu's and Azurite's data and their logs).

A SAS shows as `sig=<signature>` in a URL or query string, percent-encoded or not. `sas_signatures` finds every
one in some text; the caller says which signatures are allowed where (a tenant's own SAS, kept with the job it
submitted) and every other one is a leak: in particular every SAS the app mints, whose signatures a test cannot
know in advance. The account key is looked for in every spelling a file or answer may hold it.
"""

from __future__ import annotations

import io
import json
import re
import urllib.parse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localdev.client import ApiCallError, BatchClient

# A signature is base64 (HMAC-SHA256: 44 characters), percent-encoded in a URL: `%2B`, `%2F`, `%3D`. Inside JSON a
# `/` may be written `\/`, and a `%` stays as is. Shorter runs after `sig=` are not signatures (e.g. prose).
SIGNATURE = re.compile(rb"sig=((?:[A-Za-z0-9+/=]|\\/|%[0-9A-Fa-f]{2}){20,})")


def canonical(raw: bytes) -> str:
    """A signature as the service reads it: JSON's `\\/` undone, then percent-decoding undone."""
    return urllib.parse.unquote(raw.decode("ascii").replace("\\/", "/"))


def sas_signatures(data: bytes) -> set[str]:
    return {canonical(match.group(1)) for match in SIGNATURE.finditer(data)}


def spellings(secret: str) -> list[bytes]:
    """The forms a secret may take in a file or an answer: as is, percent-encoded, JSON-escaped."""
    forms = {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret), secret.replace("/", "\\/")}
    return [form.encode() for form in forms]


@dataclass(frozen=True)
class Leak:
    where: str
    what: str


def files_under(roots: Iterable[Path]) -> Iterator[Path]:
    for root in roots:
        if root.is_file():
            yield root
        elif root.is_dir():
            yield from (path for path in sorted(root.rglob("*")) if path.is_file())


def find_leaks(
    sources: Iterable[tuple[str, bytes]], forbidden: dict[str, str], allowed_signatures: set[str]
) -> list[Leak]:
    """Every source (name, bytes) holding a forbidden secret (label -> value) in any spelling, or a SAS signature
    not in `allowed_signatures`."""
    needles = [(label, form) for label, value in forbidden.items() for form in spellings(value)]
    leaks = []
    for where, data in sources:
        leaks += [Leak(where, label) for label, form in needles if form in data]
        leaks += [Leak(where, f"sig={sig[:6]}...") for sig in sorted(sas_signatures(data) - allowed_signatures)]
    return leaks


def read_files(roots: Iterable[Path]) -> Iterator[tuple[str, bytes]]:
    for path in files_under(roots):
        try:
            yield str(path), path.read_bytes()
        except OSError:  # removed meanwhile (a group's sandbox folder, a SQLite journal)
            continue


@dataclass
class Recorded:
    """Every answer of a run: status line, headers and body, as the client received them."""

    answers: list[tuple[str, bytes]] = field(default_factory=list)

    def add(self, where: str, data: bytes) -> None:
        self.answers.append((where, data))


class _Replayed(io.BytesIO):
    """A read answer handed on in place of the live response (same `read`, `headers`, `status`, `with`)."""

    def __init__(self, body: bytes, headers: Any, status: int) -> None:
        super().__init__(body)
        self.headers = headers
        self.status = status


class RecordingClient(BatchClient):
    """A BatchClient that records every answer (headers and body, errors too) in `recorded`."""

    def __init__(self, api_url: str, key: str | None, recorded: Recorded) -> None:
        super().__init__(api_url, key)
        self.recorded = recorded

    def open(
        self,
        method: str,
        path: str,
        query: dict[str, Any] | None = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        where = f"{method} {path}"
        try:
            response = super().open(method, path, query, data, headers)
        except ApiCallError as error:
            self.recorded.add(where, json.dumps([error.status, error.code, error.message, error.details]).encode())
            raise
        with response:
            body = response.read()
            status, answer_headers = response.status, response.headers
        self.recorded.add(where, str(answer_headers).encode() + b"\n" + body)
        return _Replayed(body, answer_headers, status)
