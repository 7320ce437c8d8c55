"""`acibatch.loopback`: kept connections, and azure-core's errors for failures, as the retry policy expects."""

from __future__ import annotations

import gc
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from azure.core.exceptions import ServiceRequestError, ServiceResponseError
from azure.core.pipeline.transport import HttpRequest

from acibatch.loopback import KeptConnections, LoopbackTransport
from tests.httpserve import serving_on_a_thread


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as aciemu's and devhost's aiohttp servers do
    server: Server

    def do_GET(self) -> None:
        self.server.peers.add(self.client_address)
        if self.path == "/hang-up":
            self.close_connection = True  # read the request, then close without answering
            return
        sent = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        data = f"{self.command} {self.path}".encode() + (b" " + sent if sent else b"")
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_PUT = do_GET

    def finish(self) -> None:
        super().finish()
        self.server.closed.add(self.client_address)  # the client closed its end (or the server hung up)

    def log_message(self, format: str, *args: object) -> None:
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.peers: set[tuple[str, int]] = set()
        self.closed: set[tuple[str, int]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


def serving() -> AbstractContextManager[Server]:
    return serving_on_a_thread(Server())


@pytest.fixture
def connections() -> Iterator[KeptConnections]:
    kept = KeptConnections(timeout=5)
    yield kept
    kept.close()


def test_keep_alive_answers_share_one_connection(connections: KeptConnections) -> None:
    with serving() as server:
        for path in ("/a", "/b", "/c"):
            response, body = connections.exchange("GET", server.url + path)
            assert (response.status, body) == (200, f"GET {path}".encode())
        assert len(server.peers) == 1


def test_close_closes_every_threads_connections(connections: KeptConnections) -> None:
    with serving() as server, ThreadPoolExecutor(1) as other_thread:
        other_thread.submit(connections.exchange, "GET", server.url + "/1").result()
        connections.exchange("GET", server.url + "/2")
        assert len(server.peers) == 2  # one connection per thread
        other_thread.submit(connections.exchange, "GET", server.url + "/3").result()
        assert len(server.peers) == 2  # kept: reused
        connections.close()
        other_thread.submit(connections.exchange, "GET", server.url + "/4").result()
        assert len(server.peers) == 3  # closed from this thread, so the other one dialled anew


def wait_for(condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + 5
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def test_an_ended_threads_connection_is_closed_when_a_new_thread_comes(connections: KeptConnections) -> None:
    with serving() as server:
        ended = threading.Thread(target=connections.exchange, args=("GET", server.url + "/1"))
        ended.start()
        ended.join()
        assert server.closed == set()  # kept while nothing else happens
        connections.exchange("GET", server.url + "/2")
        assert wait_for(lambda: len(server.closed) == 1)
        assert len(server.peers) == 2


def test_a_dropped_client_closes_its_connections() -> None:
    with serving() as server:
        dropped = KeptConnections(timeout=5)
        dropped.exchange("GET", server.url + "/1")
        del dropped
        gc.collect()
        assert wait_for(lambda: len(server.closed) == 1)


def test_only_plain_http(connections: KeptConnections) -> None:
    with pytest.raises(ValueError, match="plain http only"):
        connections.exchange("GET", "https://127.0.0.1:1/x")


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_transport_sends_the_body_and_returns_the_answer() -> None:
    with serving() as server, LoopbackTransport(timeout=5) as transport:
        request = HttpRequest("PUT", server.url + "/groups/g1?api-version=1")
        request.set_json_body({"a": 1})
        response = transport.send(request)
        assert response.status_code == 200
        answer = 'PUT /groups/g1?api-version=1 {"a": 1}'
        assert response.text() == answer
        assert response.headers["content-length"] == str(len(answer))


def test_transport_unreachable_is_a_request_error() -> None:
    with LoopbackTransport(timeout=5) as transport, pytest.raises(ServiceRequestError, match="cannot reach"):
        transport.send(HttpRequest("GET", f"http://127.0.0.1:{unused_port()}/x"))


def test_transport_hang_up_after_sending_is_a_response_error() -> None:
    with serving() as server, LoopbackTransport(timeout=5) as transport, pytest.raises(ServiceResponseError):
        transport.send(HttpRequest("GET", server.url + "/hang-up"))
