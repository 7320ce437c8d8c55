"""A quiet static HTTP server of one folder on loopback, for tests whose tasks fetch `httpUrl` inputs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from http.server import HTTPServer, SimpleHTTPRequestHandler
from pathlib import Path
from typing import Any

from tests.httpserve import serving_on_a_thread


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass  # the test's output is for its failures, not for every GET


@contextmanager
def serving_folder(folder: Path) -> Iterator[str]:
    """The folder's files over http (others answer 404) at the yielded base URL, until the block ends."""

    def handler(*args: Any) -> Quiet:
        return Quiet(*args, directory=str(folder))

    with serving_on_a_thread(HTTPServer(("127.0.0.1", 0), handler)) as server:
        yield f"http://127.0.0.1:{server.server_address[1]}"
