"""The bench's HTTP helper: it keeps one connection per server and thread, and redials a connection the server
closed, so the benchmarks load the host with the work and not with TCP set-up."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bench.durable_api import close_connections, get_json, post_json
from tests.httpserve import send_json, serving_on_a_thread


@pytest.fixture(autouse=True)
def no_kept_connections() -> Iterator[None]:
    yield
    close_connections()


class JsonHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as devhost's aiohttp server does

    def setup(self) -> None:
        super().setup()
        server: CountingServer = self.server  # type: ignore[assignment]
        server.connections.append(self.connection)

    def do_GET(self) -> None:
        self.answer(200 if self.path != "/missing" else 404, {"path": self.path})

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.answer(200, {"echo": json.loads(body) if body else None})

    def answer(self, status: int, value: object) -> None:
        server: CountingServer = self.server  # type: ignore[assignment]
        server.peers.add(self.client_address)
        send_json(self, status, value)

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass


class CountingServer(ThreadingHTTPServer):
    daemon_threads = True
    peers: set[tuple[str, int]]
    connections: list[socket.socket]


@contextmanager
def serving(port: int = 0) -> Iterator[CountingServer]:
    server = CountingServer(("127.0.0.1", port), JsonHandler)
    server.peers, server.connections = set(), []
    try:
        with serving_on_a_thread(server):
            yield server
    finally:
        for connection in server.connections:  # as a stopped devhost's would be: gone
            with suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


def test_requests_reuse_one_connection() -> None:
    with serving() as server:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        assert get_json(f"{url}/a?x=1") == {"path": "/a?x=1"}
        assert post_json(f"{url}/b", {"n": 2}) == {"echo": {"n": 2}}
        assert post_json(f"{url}/c") == {"echo": None}
        assert len(server.peers) == 1  # one client port: the same TCP connection served all three


def test_a_connection_the_server_closed_is_redialled() -> None:
    with serving() as first:
        port = first.server_address[1]
        assert get_json(f"http://127.0.0.1:{port}/one") == {"path": "/one"}
    # The kept connection now leads nowhere; a new server on the same port must still be reached.
    with serving(port) as second:
        assert get_json(f"http://127.0.0.1:{port}/two") == {"path": "/two"}
        assert len(second.peers) == 1


def test_an_error_status_raises_with_the_status() -> None:
    with serving() as server, pytest.raises(RuntimeError, match="HTTP 404"):
        get_json(f"http://127.0.0.1:{server.server_address[1]}/missing")
