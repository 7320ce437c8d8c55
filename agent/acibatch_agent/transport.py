"""One HTTP exchange on http.client, so an answer the server sends before it has read the whole body (a 403 to
a 4 MiB upload, say) is still read instead of being lost in a broken pipe, as urllib would lose it."""

from __future__ import annotations

import contextlib
import http.client
import ssl
from types import TracebackType
from urllib.parse import urljoin, urlsplit

MAX_REDIRECTS = 5
REDIRECTS = (301, 302, 303, 307, 308)


class Answer:
    """A response with its connection; closing it closes both."""

    def __init__(self, connection: http.client.HTTPConnection, response: http.client.HTTPResponse) -> None:
        self.connection, self.response = connection, response
        self.status = response.status
        self.headers = response.headers

    def read(self, size: int = -1) -> bytes:
        return self.response.read(size if size >= 0 else None)

    def close(self) -> None:
        self.response.close()
        self.connection.close()

    def __enter__(self) -> Answer:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


def _connect(url: str, timeout: float) -> tuple[http.client.HTTPConnection, str]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"cannot fetch a {parts.scheme or 'scheme-less'} URL")
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    if parts.scheme == "https":
        context = ssl.create_default_context()
        return http.client.HTTPSConnection(parts.hostname, parts.port, timeout=timeout, context=context), target
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout), target


def exchange(method: str, url: str, body: bytes | None, headers: dict[str, str], timeout: float) -> Answer:
    """Send one request and return the answer, whatever its status; GETs follow redirects. Raises OSError when no
    answer came."""
    for _ in range(MAX_REDIRECTS + 1):
        connection, target = _connect(url, timeout)
        try:
            # The server may have answered early and stopped reading: its answer is still there to read.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                connection.request(method, target, body=body, headers=headers)
            answer = Answer(connection, connection.getresponse())
        except BaseException:
            connection.close()
            raise
        location = answer.headers.get("Location")
        if method in ("GET", "HEAD") and answer.status in REDIRECTS and location:
            answer.close()
            url = urljoin(url, location)
            continue
        return answer
    raise OSError(f"more than {MAX_REDIRECTS} redirects")
