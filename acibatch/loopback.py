"""Plain-http requests over kept connections, for the local stack's services on loopback.

The ARM client uses it to talk to the local emulator (`LoopbackTransport`), and the bench to talk to devhost.
`requests`, azure-core's default transport, spends CPU on every call on its own machinery (session merging,
request preparation, urllib3's pool), which this transport skips (bench/README.md has the side-by-side
figures); locally that CPU comes from the same cores the whole stack runs on. Real ARM (https, proxies, the
environment's settings) keeps azure-core's `requests` transport, and the adapter tests run both transports.
"""

from __future__ import annotations

import http.client
import threading
import urllib.parse
import weakref
from typing import Any

from azure.core.exceptions import ServiceRequestError, ServiceResponseError, ServiceResponseTimeoutError
from azure.core.pipeline.transport import HttpRequest, HttpResponse, HttpTransport
from azure.core.pipeline.transport._base import HttpClientTransportResponse

Server = tuple[str, int]
# A kept connection the server closed while it sat idle fails like this on its next use, before any answer.
CLOSED_WHILE_IDLE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


class ConnectFailed(ConnectionError):
    """The server could not be reached: nothing of the request was sent."""


class KeptConnections:
    """One open connection per server and thread, reused for the next request and redialled once when the
    server closed it while it was idle (an idle timeout, or a previous server on the same port)."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._mine = threading.local()
        self._lock = threading.Lock()
        self._by_thread: dict[threading.Thread, dict[Server, http.client.HTTPConnection]] = {}
        # A client dropped without `close` (as ARM clients often are) still closes its sockets when collected.
        weakref.finalize(self, _close_all, self._by_thread)

    def exchange(
        self, method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[http.client.HTTPResponse, bytes]:
        """Send one request and read its whole answer: (the response, for status and headers; its body)."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "http":
            raise ValueError(f"plain http only, got {url!r}")
        server = (parts.hostname or "127.0.0.1", parts.port or 80)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        kept = self._kept().pop(server, None)
        if kept is not None:
            try:
                return self._send(kept, server, method, target, body, headers or {})
            except CLOSED_WHILE_IDLE:
                pass  # closed by _send; redial below
        fresh = http.client.HTTPConnection(*server, timeout=self.timeout)
        try:
            fresh.connect()
        except OSError as exc:
            raise ConnectFailed(f"cannot reach {server[0]}:{server[1]}: {exc}") from exc
        return self._send(fresh, server, method, target, body, headers or {})

    def close(self) -> None:
        """Close every thread's kept connections."""
        with self._lock:
            every = dict(self._by_thread)
        _close_all(every)

    def _kept(self) -> dict[Server, http.client.HTTPConnection]:
        kept: dict[Server, http.client.HTTPConnection] | None = getattr(self._mine, "open", None)
        if kept is None:
            kept = self._mine.open = {}
            with self._lock:
                # Threads come and go (a bench's pools): a thread that ended can use its connections no more.
                ended = {
                    thread: self._by_thread.pop(thread) for thread in list(self._by_thread) if not thread.is_alive()
                }
                self._by_thread[threading.current_thread()] = kept
            _close_all(ended)
        return kept

    def _send(
        self,
        connection: http.client.HTTPConnection,
        server: Server,
        method: str,
        target: str,
        body: bytes | None,
        headers: dict[str, str],
    ) -> tuple[http.client.HTTPResponse, bytes]:
        try:
            connection.request(method, target, body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
        except BaseException:
            connection.close()
            raise
        if response.will_close:
            connection.close()
        else:
            self._kept()[server] = connection
        return response, payload


def _close_all(by_thread: dict[threading.Thread, dict[Server, http.client.HTTPConnection]]) -> None:
    for kept in list(by_thread.values()):
        for connection in list(kept.values()):
            connection.close()
        kept.clear()


class LoopbackTransport(HttpTransport):  # type: ignore[type-arg]
    """azure-core transport over `KeptConnections`, with `requests`' mapping of failures to azure-core's errors
    (so the retry policy treats them alike): unreachable -> ServiceRequestError, broken or timed out after
    sending -> ServiceResponseError."""

    def __init__(self, timeout: float = 60.0) -> None:
        self.connections = KeptConnections(timeout)

    def __enter__(self) -> LoopbackTransport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def open(self) -> None:
        pass

    def close(self) -> None:
        self.connections.close()

    def send(self, request: HttpRequest, **kwargs: Any) -> HttpResponse:
        body = request.data
        if isinstance(body, str):
            body = body.encode()
        elif body is not None and not isinstance(body, bytes):
            raise TypeError(f"LoopbackTransport sends str or bytes bodies, not {type(body).__name__}")
        try:
            response, payload = self.connections.exchange(request.method, request.url, body, dict(request.headers))
        except ConnectFailed as exc:
            raise ServiceRequestError(exc, error=exc) from exc
        except TimeoutError as exc:
            raise ServiceResponseTimeoutError(exc, error=exc) from exc
        except (OSError, http.client.HTTPException) as exc:
            raise ServiceResponseError(exc, error=exc) from exc
        answer = HttpClientTransportResponse(request, response)  # type: ignore[no-untyped-call]
        answer.data = payload
        return answer
