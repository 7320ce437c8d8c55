"""`api.raising.raise_unless_finished` with the real Python Durable client: the host's 410 and 404 to a raise are
"finished" with no further call, a 202 is raised, and any other answer is settled by one status read.

The server answers as the extension's handlers do (HttpApiHandler.HandleRaiseEventRequestAsync: 404 for a missing
instance, 410 for a finished one, 202 once raised; the status route: 200 with the status of a finished instance).
What is under test is the real client's side: the messages it turns those answers into, which the API matches.
"""

from __future__ import annotations

import asyncio
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

import azure.durable_functions as df
import pytest
from azure.durable_functions.models.utils import http_utils

from api.raising import raise_unless_finished
from devhost.binding import durable_client_binding
from tests.httpserve import send_json, serving_on_a_thread

SYSTEM_KEY = "system-key-never-logged"


class RaiseApi(BaseHTTPRequestHandler):
    """Per instance id: the raise's status code, and the runtime status a status read finds (None: 404)."""

    answers: dict[str, tuple[int, str | None]] = {
        "running": (202, "Running"),
        "completed": (410, "Completed"),
        "purged": (404, None),
        "flaky-but-done": (500, "Completed"),
        "flaky-and-running": (500, "Running"),
        "unknown-answer": (409, "Terminated"),
    }
    calls: list[tuple[str, str]] = []

    def instance(self) -> str:
        parts = urlsplit(self.path).path.split("/")
        return unquote(parts[parts.index("instances") + 1])

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        RaiseApi.calls.append(("raise", self.instance()))
        self.bare(self.answers[self.instance()][0])

    def do_GET(self) -> None:
        RaiseApi.calls.append(("status", self.instance()))
        runtime = self.answers[self.instance()][1]
        if runtime is None:
            self.bare(404)
        else:
            send_json(
                self, 200 if runtime != "Running" else 202, {"instanceId": self.instance(), "runtimeStatus": runtime}
            )

    def bare(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def raise_to(instance: str) -> tuple[bool | Exception, list[tuple[str, str]]]:
    RaiseApi.calls = []
    with serving_on_a_thread(HTTPServer(("127.0.0.1", 0), RaiseApi)) as server:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        client = df.DurableOrchestrationClient(durable_client_binding(base, "hub", f"{base}/rpc/", SYSTEM_KEY))

        async def run() -> bool | Exception:
            try:
                return await raise_unless_finished(client, instance, "Callback", {"status": "progress"})
            except Exception as error:
                return error
            finally:
                await http_utils._close_session()  # the SDK's shared session belongs to this event loop

        return asyncio.run(run()), RaiseApi.calls


@pytest.mark.parametrize(("instance", "raised"), [("running", True), ("completed", False), ("purged", False)])
def test_202_410_and_404_are_told_by_the_raise_alone(instance: str, raised: bool) -> None:
    outcome, calls = raise_to(instance)
    assert outcome is raised
    assert calls == [("raise", instance)]  # no status read


@pytest.mark.parametrize("instance", ["flaky-but-done", "unknown-answer"])
def test_another_answer_is_finished_when_one_read_says_so(instance: str) -> None:
    outcome, calls = raise_to(instance)
    assert outcome is False
    assert calls == [("raise", instance), ("status", instance)]


def test_a_failed_raise_to_a_running_instance_stays_an_error() -> None:
    # The sender gets a 5xx and retries: the report must not be acknowledged as if the task had finished.
    outcome, calls = raise_to("flaky-and-running")
    assert isinstance(outcome, Exception) and "500" in str(outcome)
    assert SYSTEM_KEY not in str(outcome)
    assert calls == [("raise", "flaky-and-running"), ("status", "flaky-and-running")]
