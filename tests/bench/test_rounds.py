"""How the bench reports its repeated end-to-end rounds, and how it sees the job end."""

from __future__ import annotations

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from bench.durable_api import DurableApi, close_connections, wait_for_instance
from bench.run import highest_rss, median_round, rounds_row
from tests.httpserve import send_json, serving_on_a_thread


def a_round(seconds: float, devhost_mb: float) -> dict[str, Any]:
    return {"seconds": seconds, "peak_rss_mb": {"devhost": devhost_mb, "aciemu": 40.0}}


def test_the_median_round_is_reported_whole() -> None:
    rounds = [a_round(25.0, 230), a_round(23.0, 240), a_round(24.0, 235)]
    assert median_round(rounds) is rounds[2]
    assert median_round(rounds[:2])["seconds"] == 25.0  # an even count: the upper middle, never the better
    assert median_round(rounds[:1]) is rounds[0]


def test_rss_is_that_of_the_round_that_peaked_highest() -> None:
    rounds = [a_round(25.0, 230), a_round(23.0, 240), a_round(24.0, 235)]
    assert highest_rss(rounds) == {"devhost": 240, "aciemu": 40.0}


def test_rounds_row_lists_every_ratio() -> None:
    assert rounds_row({"rounds_over_floor": [1.21, 1.18, 1.3]}) == "1.21x, 1.18x, 1.3x"


class Status:
    answers = ["Pending", "Running", "Running", "Completed"]
    asked: list[str] = []
    keys: list[str | None] = []


class StatusHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        Status.asked.append(self.path)
        Status.keys.append(self.headers.get("x-functions-key"))
        answer = Status.answers[min(len(Status.asked), len(Status.answers)) - 1]
        send_json(self, 200, {"runtimeStatus": answer})

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def host() -> Iterator[str]:
    Status.asked, Status.keys = [], []
    with serving_on_a_thread(HTTPServer(("127.0.0.1", 0), StatusHandler)) as server:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    close_connections()


def test_waits_until_the_instance_has_ended_asking_without_its_input(host: str) -> None:
    wait_for_instance(DurableApi.of(host, "system-key"), "job:bench:e2e", poll_seconds=0.01)
    assert len(Status.asked) == 4
    assert Status.keys == ["system-key"] * 4  # the Durable API refuses a caller without the extension's key
    assert Status.asked[0] == "/runtime/webhooks/durabletask/instances/job:bench:e2e?showInput=false"
