"""Send a POST to a tenant-aimed URL through the guard of `acibatch.outbound`, pinned to the checked address.

`post` checks the URL again, resolves it (refusing when any address is internal), then connects to exactly one
checked address while TLS still names and verifies the URL's host: a DNS answer that changes between check and
connect cannot redirect the request. Redirects are refused, the exchange has a total deadline, and at most
`MAX_RESPONSE_BYTES` of the answer is read.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from acibatch.outbound import (
    IPAddress,
    OutboundFailed,
    OutboundPolicy,
    OutboundRefused,
    Scheme,
    Target,
    check_url,
    effective_address,
    resolve,
)

CONNECT_TIMEOUT_SECONDS = 5.0
READ_TIMEOUT_SECONDS = 10.0
# Per-read timeouts alone let a receiver drip a byte every few seconds and hold an activity slot for minutes.
TOTAL_TIMEOUT_SECONDS = 30.0
MAX_RESPONSE_BYTES = 4096
USER_AGENT = "acibatch-outbound/1"


@dataclass(frozen=True)
class OutboundResponse:
    status: int
    body: bytes  # at most MAX_RESPONSE_BYTES


class _PinnedConnection(http.client.HTTPConnection):
    """An HTTP connection to one already-checked address; `host` still fills the Host header."""

    def __init__(self, target: Target, address: IPAddress, timeouts: Timeouts) -> None:
        super().__init__(target.host, target.port, timeout=timeouts.connect)
        self._address = address
        self._read_timeout = timeouts.read

    def connect(self) -> None:
        # A mapped address is dialled as its IPv4 address: the same destination, on an IPv4 socket.
        address = str(effective_address(self._address))
        self.sock = socket.create_connection((address, self.port), timeout=self.timeout)
        self.sock.settimeout(self._read_timeout)


class _PinnedTlsConnection(_PinnedConnection):
    """TLS over the pinned socket: SNI and certificate verification use the URL's host name, not the address."""

    default_port = 443  # so the Host header leaves out the default port, as for any https client

    def __init__(self, target: Target, address: IPAddress, timeouts: Timeouts, tls: ssl.SSLContext) -> None:
        super().__init__(target, address, timeouts)
        self._tls = tls

    def connect(self) -> None:
        super().connect()
        self.sock = self._tls.wrap_socket(self.sock, server_hostname=self.host)


@dataclass(frozen=True)
class Timeouts:
    connect: float = CONNECT_TIMEOUT_SECONDS
    read: float = READ_TIMEOUT_SECONDS  # each wait for bytes
    total: float = TOTAL_TIMEOUT_SECONDS  # the whole exchange, however slowly the peer drips its answer


class _Deadline:
    """Shuts the connection's socket down once the total time is up; `expired` tells the caller why it broke."""

    def __init__(self, connection: http.client.HTTPConnection, seconds: float) -> None:
        self.expired = False
        self._connection = connection
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def _expire(self) -> None:
        self.expired = True
        sock = self._connection.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()


_DEFAULT_TLS = ssl.create_default_context()


def post(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    policy: OutboundPolicy,
    *,
    timeouts: Timeouts = Timeouts(),  # frozen, so one shared default is safe
    tls: ssl.SSLContext | None = None,
) -> OutboundResponse:
    """POST `body` to `url` if the policy allows it, and return the answer when it is not a redirect.

    A 3xx raises OutboundRefused: redirects are not followed, since their target was never checked. Failing to
    connect to one resolved address tries the next; once connected, any failure raises OutboundFailed (trying
    another address then could deliver the same POST twice).
    """
    target = check_url(url, policy)
    addresses = resolve(target, policy)
    failures: list[str] = []
    for address in addresses:
        connection: _PinnedConnection
        if target.scheme is Scheme.HTTPS:
            connection = _PinnedTlsConnection(target, address, timeouts, tls or _DEFAULT_TLS)
        else:
            connection = _PinnedConnection(target, address, timeouts)
        try:
            with _Deadline(connection, timeouts.total) as deadline:
                try:
                    connection.connect()
                except ssl.SSLError as error:
                    raise OutboundFailed(f"TLS with {target.where} failed: {error}") from None
                except OSError as error:
                    failures.append(f"{address}: {error}")
                    continue
                try:
                    connection.request(
                        "POST",
                        target.target,
                        body=body,
                        headers={"User-Agent": USER_AGENT, "Connection": "close", **headers},
                    )
                    response = connection.getresponse()
                    answer = response.read(MAX_RESPONSE_BYTES)
                except (OSError, http.client.HTTPException) as error:
                    failed: str | None = f"the request to {target.where} failed: {error}"
                else:
                    failed = None
                # Checked after success too: a cut-off answer can parse as a complete one.
                if deadline.expired:
                    raise OutboundFailed(f"{target.where} did not answer within {timeouts.total:g} s in total")
                if failed is not None:
                    raise OutboundFailed(failed)
        finally:
            connection.close()
        if 300 <= response.status < 400:
            location = response.getheader("Location") or ""
            where = f" to {_location_host(location)}" if location else ""
            raise OutboundRefused(
                f"{target.where} answered HTTP {response.status} (a redirect{where}); redirects are not followed: "
                "set the URL to the final address"
            )
        return OutboundResponse(status=response.status, body=answer)
    raise OutboundFailed(f"could not connect to {target.where}: " + "; ".join(failures))


def _location_host(location: str) -> str:
    """Only the host of a redirect's target: its path and query may carry secrets."""
    try:
        host = urlsplit(location).hostname
    except ValueError:
        host = None
    return host or "a relative location"
