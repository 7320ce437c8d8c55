"""The CLI as a newcomer meets it: progress output on a terminal vs a pipe, a closed pipe, unreachable API.

The CLI runs as a real process against a small HTTP server on 127.0.0.1 that answers the documented job
shapes; what is under test is the CLI's output, not the API (tests/e2e/test_api.py runs it on the stack).
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from localdev.client import BatchClient
from tests.httpserve import send_json, serving_on_a_thread

BIG_TASKS = 3000  # its status listing is far larger than a pipe's buffer (64 KiB on Linux)
PHASES = [("Queued", {"Queued": 3}), ("Running", {"Running": 2, "Succeeded": 1}), ("Succeeded", {"Succeeded": 3})]


def job_body(job_id: str, state: str, counts: dict[str, int], total: int, offset: int, limit: int) -> dict[str, Any]:
    ids = [f"task-{index}" for index in range(offset, min(total, offset + limit))]
    tasks = [{"id": i, "state": state, "attempts": 1, "exitCode": 0, "error": None} for i in ids]
    full = {name: counts.get(name, 0) for name in ("Queued", "Running", "Succeeded", "Failed", "Cancelled")}
    more = bool(ids) and offset + len(ids) < total
    return {"jobId": job_id, "state": state, "taskCount": total, "counts": full, "tasks": tasks,
            "offset": offset, "nextOffset": offset + len(ids) if more else None}  # fmt: skip


class FakeJobs(BaseHTTPRequestHandler):
    """GET /api/jobs/big: a finished 3000-task job; GET /api/jobs/moving: Queued, Running, Succeeded in turn."""

    polls: dict[str, int] = {}

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        offset, limit = int(query.get("offset", 0)), int(query.get("limit", 100))
        job_id = url.path.rsplit("/", 1)[-1]
        if job_id == "big":
            send_json(self, 200, job_body("big", "Succeeded", {"Succeeded": BIG_TASKS}, BIG_TASKS, offset, limit))
            return
        seen = self.polls.get(job_id, 0)
        if limit == 0:
            self.polls[job_id] = seen + 1
        state, counts = PHASES[min(seen, len(PHASES) - 1)]
        send_json(self, 200, job_body(job_id, state, counts, 3, offset, limit))

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def api() -> Iterator[str]:
    FakeJobs.polls = {}
    with serving_on_a_thread(ThreadingHTTPServer(("127.0.0.1", 0), FakeJobs)) as server:
        yield f"http://127.0.0.1:{server.server_address[1]}/api"


def cli(api: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "localdev.cli", "--url", api, "--key", "k", *args]


def test_a_closed_pipe_ends_the_command_quietly(api: str) -> None:
    # `acibatch status big | head -1`: the reader leaves after one line while the CLI still has pages to print.
    with subprocess.Popen(cli(api, "status", "big"), stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        assert process.stdout is not None and process.stderr is not None
        first = process.stdout.readline()
        process.stdout.close()
        stderr = process.stderr.read().decode()
        assert process.wait(timeout=30) == 141
    assert first.startswith(b"big  Succeeded")
    assert stderr == ""


def test_watch_into_a_pipe_prints_plain_lines_only_when_something_changes(api: str) -> None:
    done = subprocess.run(cli(api, "watch", "moving"), capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stdout and "[" not in done.stdout
    progress = [line for line in done.stdout.splitlines() if line.startswith("moving  ")]
    # One line per distinct poll answer (Queued, Running, Succeeded), then the final status line.
    assert [line.split()[1] for line in progress] == ["Queued", "Running", "Succeeded", "Succeeded"]
    assert "1/3 done" in progress[1]


def test_watch_on_a_terminal_redraws_one_progress_bar(api: str) -> None:
    leader, follower = pty.openpty()
    process = subprocess.Popen(cli(api, "watch", "moving"), stdout=follower, stderr=subprocess.DEVNULL)
    os.close(follower)
    output = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # EIO: the process closed the terminal's last writer
            break
        if not chunk:
            break
        output += chunk
    os.close(leader)
    assert process.wait(timeout=60) == 0
    text = output.decode()
    assert text.count("\r") >= 3
    assert "[##########...................." in text and "[##############################] 3/3" in text


def test_unreachable_api_and_a_bad_spec_file_say_which_is_which(tmp_path: Path) -> None:
    dead = "http://127.0.0.1:9/api"  # the discard port: nothing listens there
    down = subprocess.run(cli(dead, "status", "x"), capture_output=True, text=True, timeout=60, check=False)
    assert down.returncode == 1 and f"cannot reach {dead}" in down.stderr
    missing = subprocess.run(cli(dead, "submit", str(tmp_path / "none.json")), capture_output=True, text=True,
                             timeout=60, check=False)  # fmt: skip
    assert missing.returncode == 1 and "No such file" in missing.stderr and "cannot reach" not in missing.stderr
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    bad = subprocess.run(cli(dead, "submit", str(broken)), capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 1 and "is not a JSON job spec" in bad.stderr and "cannot reach" not in bad.stderr


def test_paging_stops_at_a_null_next_offset(api: str) -> None:
    tasks = BatchClient(api, "k").all_tasks("big", page=1000)
    assert len(tasks) == BIG_TASKS and tasks[-1]["id"] == f"task-{BIG_TASKS - 1}"
    assert json.loads(json.dumps(tasks[0]))["state"] == "Succeeded"
