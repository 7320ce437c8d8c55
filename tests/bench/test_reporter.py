"""The bench's bash callback client: what it sends, and that it retries an answer that is not 2xx."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from bench.run import sleep_then_call_back
from tests.httpserve import serving_on_a_thread


class Recorder(ThreadingHTTPServer):
    def __init__(self, statuses: list[int]) -> None:
        super().__init__(("127.0.0.1", 0), RecordingHandler)
        self.statuses = statuses  # answers to give in turn; the last one repeats
        self.requests: list[dict[str, Any]] = []


class RecordingHandler(BaseHTTPRequestHandler):
    server: Recorder

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.requests.append({"path": self.path, "headers": dict(self.headers), "body": json.loads(body)})
        statuses = self.server.statuses
        self.send_response(statuses.pop(0) if len(statuses) > 1 else statuses[0])
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def accepting() -> Iterator[Recorder]:
    with serving_on_a_thread(Recorder([202])) as server:
        yield server


@pytest.fixture
def busy_then_accepting() -> Iterator[Recorder]:
    with serving_on_a_thread(Recorder([503, 202])) as server:
        yield server


def report(server: Recorder) -> subprocess.CompletedProcess[str]:
    port = server.server_address[1]
    env = {
        **os.environ,
        "BATCH_CALLBACK_URL": f"http://127.0.0.1:{port}/api/callbacks/t1/job-1/3?attempt=1",
        "BATCH_CALLBACK_TOKEN": "secret-token",
    }
    command = sleep_then_call_back("bash")
    return subprocess.run(command, check=False, env=env, capture_output=True, text=True, timeout=30)


def test_bash_reporter_posts_the_result_with_the_bearer_token(accepting: Recorder) -> None:
    before = time.time()
    done = report(accepting)
    after = time.time()

    assert done.returncode == 0, done.stderr
    [request] = accepting.requests
    assert request["path"] == "/api/callbacks/t1/job-1/3?attempt=1"
    assert request["headers"]["Authorization"] == "Bearer secret-token"
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["body"]["status"] == "succeeded"
    assert request["body"]["exitCode"] == 0
    started = request["body"]["result"]["containerStartedAt"]
    assert before <= started <= after - 1.0  # stamped before its second of sleep


def test_bash_reporter_tries_again_after_an_answer_that_is_not_2xx(busy_then_accepting: Recorder) -> None:
    done = report(busy_then_accepting)

    assert done.returncode == 0, done.stderr
    assert len(busy_then_accepting.requests) == 2
    assert busy_then_accepting.requests[0]["body"] == busy_then_accepting.requests[1]["body"]
