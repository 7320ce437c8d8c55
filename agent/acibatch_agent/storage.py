"""The few Blob service REST calls the agent makes, authorised by the SAS in each URL (stdlib HTTP only).

Errors become StorageError with the HTTP status and the service's error code; messages carry URLs without
their query string, so a SAS never ends up in a log or a result.
"""

from __future__ import annotations

import base64
import http.client
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from email.utils import formatdate
from typing import IO
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from .layout import redact
from .transport import Answer, exchange

API_VERSION = "2021-08-06"
TIMEOUT = 60
RETRIES = 4
# Both Append Block and Put Block take at most 4 MiB in every service version we may meet.
MAX_BLOCK = 4 * 1024 * 1024
COPY_CHUNK = 1024 * 1024
# An error body is read only to find the service's <Code>; a web server's error page can be big.
ERROR_BODY_LIMIT = 64 * 1024


class StorageError(Exception):
    def __init__(self, status: int | None, code: str | None, what: str) -> None:
        self.status, self.code = status, code
        detail = f"HTTP {status}" if status is not None else "no answer"
        super().__init__(f"{what}: {detail}{f' {code}' if code else ''}")


def blob_url(container_url: str, name: str) -> str:
    """The URL of blob `name` in the container, keeping the container URL's SAS query."""
    parts = urlsplit(container_url)
    path = parts.path.rstrip("/") + "/" + quote(name, safe="/~-._")
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def _error_code(answer: Answer) -> str | None:
    code = answer.headers.get("x-ms-error-code")
    if code:
        return str(code)
    try:
        body = answer.read(ERROR_BODY_LIMIT)
        node = ET.fromstring(body).find("Code") if body else None
    except (ET.ParseError, OSError):
        return None
    return node.text if node is not None else None


def request(
    method: str,
    url: str,
    what: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    retries: int = RETRIES,
) -> Answer:
    """One call, retried with back-off on network errors, 408, 429 and 5xx (the service's own advice). The caller
    reads and closes the answer."""
    delay = 0.5
    for attempt in range(retries + 1):
        all_headers = {"x-ms-version": API_VERSION, "x-ms-date": formatdate(usegmt=True), **(headers or {})}
        if body is not None or method in ("PUT", "POST"):
            all_headers["Content-Length"] = str(len(body or b""))
        try:
            answer = exchange(method, url, body, all_headers, TIMEOUT)
        except (OSError, http.client.HTTPException) as error:
            if attempt == retries:
                raise StorageError(None, type(error).__name__, what) from None
        else:
            if answer.status < 300:
                return answer
            with answer:
                retryable = answer.status in (408, 429) or answer.status >= 500
                if not retryable or attempt == retries:
                    raise StorageError(answer.status, _error_code(answer), what) from None
        time.sleep(delay)
        delay = min(delay * 2, 8)
    raise AssertionError("unreachable")


def list_blobs(container_url: str, prefix: str, page_size: int | None = None) -> Iterator[str]:
    """Names of the blobs under `prefix`, following NextMarker across pages (of the service's size, 5,000, unless
    `page_size` says otherwise)."""
    marker = ""
    while True:
        params = {"restype": "container", "comp": "list", "prefix": prefix}
        if page_size:
            params["maxresults"] = str(page_size)
        if marker:
            params["marker"] = marker
        with request("GET", with_query(container_url, **params), f"listing {redact(container_url)}") as answer:
            root = ET.fromstring(answer.read())
        for blob in root.iter("Blob"):
            name = blob.findtext("Name")
            if name is not None:
                yield name
        marker = root.findtext("NextMarker") or ""
        if not marker:
            return


def download(url: str, target: IO[bytes], what: str) -> int:
    """GET `url` into the open file `target`; the number of bytes. A transfer cut short is a StorageError too."""
    size = 0
    with request("GET", url, what) as answer:
        while True:
            try:
                chunk = answer.read(COPY_CHUNK)
            except (OSError, http.client.HTTPException) as error:
                cut = f"transfer cut short after {size} bytes ({type(error).__name__})"
                raise StorageError(answer.status, cut, what) from None
            if not chunk:
                break
            target.write(chunk)
            size += len(chunk)
        # http.client's read(n) returns what came when the peer hangs up early; only the length tells.
        expected = answer.headers.get("Content-Length")
        if expected is not None and expected.isdigit() and int(expected) != size:
            raise StorageError(answer.status, f"transfer cut short after {size} of {expected} bytes", what)
    return size


def put_blob(url: str, data: bytes, what: str, blob_type: str = "BlockBlob") -> None:
    headers = {"x-ms-blob-type": blob_type, "Content-Type": "application/octet-stream"}
    request("PUT", url, what, body=data, headers=headers).close()


def put_block(url: str, block_id: str, data: bytes, what: str) -> None:
    request("PUT", with_query(url, comp="block", blockid=block_id), what, body=data).close()


def put_block_list(url: str, block_ids: list[str], what: str) -> None:
    items = "".join(f"<Latest>{block_id}</Latest>" for block_id in block_ids)
    body = f'<?xml version="1.0" encoding="utf-8"?><BlockList>{items}</BlockList>'.encode()
    request(
        "PUT", with_query(url, comp="blocklist"), what, body=body, headers={"Content-Type": "application/xml"}
    ).close()


def block_id(index: int) -> str:
    # Every block id of one blob must have the same length before encoding.
    return base64.b64encode(f"block-{index:08d}".encode()).decode()


def blob_size(url: str, what: str) -> tuple[int, int] | None:
    """The blob's length and (for an append blob) its committed block count; None when there is no such blob."""
    try:
        with request("HEAD", url, what) as answer:
            length = int(answer.headers.get("Content-Length") or 0)
            return length, int(answer.headers.get("x-ms-blob-committed-block-count") or 0)
    except StorageError as error:
        if error.status == 404:
            return None
        raise


def append_block(url: str, data: bytes, position: int, what: str) -> None:
    """Append `data` at `position`. The append-position condition makes a retried append that had in fact landed
    fail with 412 instead of writing the bytes twice."""
    headers = {"x-ms-blob-condition-appendpos": str(position)}
    request("PUT", with_query(url, comp="appendblock"), what, body=data, headers=headers).close()


def last_byte(url: str, length: int, what: str) -> bytes:
    """The last byte of a blob `length` bytes long (the SAS needs read permission)."""
    with request("GET", url, what, headers={"x-ms-range": f"bytes={length - 1}-{length - 1}"}) as answer:
        return answer.read(1)
