"""`acibatch upload | files | download | logs` as real processes against a small HTTP server on 127.0.0.1 that
answers the documented shapes of the files API (the API itself runs on the stack in
tests/integration/test_files_api.py). Under test: what the CLI sends, writes, verifies and refuses.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from acibatch.filelimits import INPUT_MAX_BYTES
from localdev.cli_files import FilesError, local_target, upload_plan
from tests.httpserve import send_json, serving_on_a_thread

PREFIX = "jobs/j/tasks/{task}/outputs/"
CONTENTS = {"t1": {"res/a.txt": b"alpha\n", "res/deep/b.bin": bytes(range(256)) * 50}, "t2": {"c.csv": b"x,y\n1,2\n"}}
LOG_PAGES = [b"first line\n", "second €\n".encode(), b"", b"last\n"]
RETRY_LOGS = {1: [b"attempt 1 starts\n", b"attempt 1 fails\n"], 2: [b"attempt 2 starts\n", b"attempt 2 succeeds\n"]}


def listed(task: str, name: str, data: bytes, sha: str | None = None) -> dict[str, Any]:
    full = PREFIX.format(task=task) + name
    digest = sha or hashlib.sha256(data).hexdigest()
    return {"name": full, "file": name, "size": len(data), "sha256": digest, "destination": "default"}


class FakeFilesApi(BaseHTTPRequestHandler):
    """The files routes of one job `j` with tasks t1, t2 (outputs) and t3 (none: 404)."""

    files: ClassVar[dict[str, list[dict[str, Any]]]] = {}
    blobs: ClassVar[dict[str, bytes]] = {}
    uploads: ClassVar[dict[str, bytes]] = {}
    log_offsets: ClassVar[list[int]] = []
    queued_polls: ClassVar[int] = 0
    retry: ClassVar[bool] = False
    log_queries: ClassVar[list[dict[str, str]]] = []
    task_state: ClassVar[str] = "Queued"

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        parts = [urllib.parse.unquote(part) for part in url.path.split("/")[2:]]  # after /api
        if parts == ["jobs", "j"]:
            tasks = [{"id": task, "state": "Succeeded"} for task in ("t1", "t2", "t3")]
            send_json(self, 200, {"jobId": "j", "tasks": tasks, "nextOffset": None})
        elif parts[:3] == ["jobs", "j", "tasks"] and len(parts) == 4:
            send_json(self, 200, {"id": parts[3], "state": self.task_state})
        elif parts[:3] == ["jobs", "j", "tasks"] and parts[4] == "files" and len(parts) == 5:
            if parts[3] not in self.files:
                send_json(self, 404, {"error": {"code": "FilesNotAvailable", "message": "no files"}})
                return
            send_json(self, 200, {"attempt": 1, "files": self.files[parts[3]]})
        elif parts[:3] == ["jobs", "j", "tasks"] and parts[4] == "files":
            self.send_bytes(self.blobs["/".join(parts[5:])], "application/octet-stream", {})
        elif parts[:3] == ["jobs", "j", "tasks"] and parts[4] == "logs":
            if self.queued_polls > 0:  # the task has not started: no log yet
                FakeFilesApi.queued_polls -= 1
                send_json(self, 404, {"error": {"code": "LogNotAvailable", "message": "not started yet"}})
                return
            if self.retry:
                self.serve_retried_log(query)
            else:
                self.serve_log(int(query.get("offset", 0)))
        else:
            send_json(self, 404, {"error": {"code": "NotFound", "message": self.path}})

    def serve_log(self, offset: int) -> None:
        # The log grows by one page per request; the attempt ends when the last page has been written.
        self.log_offsets.append(offset)
        written = b"".join(LOG_PAGES[: len(self.log_offsets)])
        complete = len(self.log_offsets) >= len(LOG_PAGES)
        page = written[offset:]
        headers = {"X-Acibatch-Log-Offset": str(offset + len(page)), "X-Acibatch-Log-Complete": str(complete).lower()}
        self.send_bytes(page, "text/plain; charset=utf-8", headers)

    def serve_retried_log(self, query: dict[str, str]) -> None:
        """A task whose attempt 1 ends (its log complete while the task waits for the retry), then attempt 2
        starts and ends the task. Time is the number of requests: request n sees the state after n steps."""
        step = len(self.log_queries)
        self.log_queries.append(query)
        latest = 1 if step < 4 else 2
        attempt = int(query.get("attempt", latest))
        if attempt == 1:
            written, complete = b"".join(RETRY_LOGS[1][: step + 1]), step >= 1
        else:
            written, complete = b"".join(RETRY_LOGS[2][: step - 3]), step >= 6
        offset = int(query.get("offset", 0))
        page = written[offset:]
        headers = {
            "X-Acibatch-Log-Offset": str(offset + len(page)),
            "X-Acibatch-Log-Complete": str(complete).lower(),
            "X-Acibatch-Log-Attempt": str(attempt),
            "X-Acibatch-Log-Latest-Attempt": str(latest),
            "X-Acibatch-Task-Ended": str(step >= 6).lower(),
        }
        self.send_bytes(page, "text/plain; charset=utf-8", headers)

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        self.uploads[path] = body
        send_json(self, 201, {"path": path, "size": len(body)})

    def send_bytes(self, data: bytes, kind: str, headers: dict[str, str]) -> None:
        self.send_response(200)
        for name, value in {"Content-Type": kind, "Content-Length": str(len(data)), **headers}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def api() -> Iterator[str]:
    FakeFilesApi.files = {task: [listed(task, n, d) for n, d in files.items()] for task, files in CONTENTS.items()}
    FakeFilesApi.blobs = {PREFIX.format(task=t) + n: d for t, files in CONTENTS.items() for n, d in files.items()}
    FakeFilesApi.uploads, FakeFilesApi.log_offsets, FakeFilesApi.queued_polls = {}, [], 0
    FakeFilesApi.task_state, FakeFilesApi.retry, FakeFilesApi.log_queries = "Queued", False, []
    with serving_on_a_thread(ThreadingHTTPServer(("127.0.0.1", 0), FakeFilesApi)) as server:
        yield f"http://127.0.0.1:{server.server_address[1]}/api"


def run(api: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    command = [sys.executable, "-m", "localdev.cli", "--url", api, "--key", "k", *args]
    return subprocess.run(command, capture_output=True, timeout=60, check=False)


def test_download_fetches_every_tasks_outputs_and_shows_progress(api: str, tmp_path: Path) -> None:
    done = run(api, "download", "j", "--to", str(tmp_path))
    assert done.returncode == 0, done.stderr
    for task, files in CONTENTS.items():
        for name, data in files.items():
            assert (tmp_path / task / name).read_bytes() == data
    assert not (tmp_path / "t3").exists()  # a task without outputs is skipped
    assert b"3/3 files" in done.stderr
    assert not list(tmp_path.rglob(".*.partial"))


def test_one_tasks_download_goes_straight_into_the_folder(api: str, tmp_path: Path) -> None:
    assert run(api, "download", "j", "t2", "--to", str(tmp_path)).returncode == 0
    assert (tmp_path / "c.csv").read_bytes() == CONTENTS["t2"]["c.csv"]


def test_a_download_that_does_not_match_its_sha256_is_not_kept(api: str, tmp_path: Path) -> None:
    FakeFilesApi.files["t2"] = [listed("t2", "c.csv", CONTENTS["t2"]["c.csv"], sha="0" * 64)]
    done = run(api, "download", "j", "t2", "--to", str(tmp_path))
    assert done.returncode == 1
    assert b"but the task recorded" in done.stderr and b"nothing was kept" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_name_that_would_escape_the_folder_is_refused_before_anything_is_written(api: str, tmp_path: Path) -> None:
    target = tmp_path / "out"
    FakeFilesApi.files["t2"] = [listed("t2", "../../escaped.txt", b"x")]
    done = run(api, "download", "j", "t2", "--to", str(target))
    assert done.returncode == 1 and b"refusing output name" in done.stderr
    assert not (tmp_path / "escaped.txt").exists() and not list(tmp_path.rglob("escaped.txt"))


def test_files_prints_a_table_of_names_sizes_and_digests(api: str) -> None:
    done = run(api, "files", "j", "t1")
    assert done.returncode == 0
    lines = done.stdout.decode().splitlines()
    assert lines[0] == "attempt 1: 2 file(s)"
    row = next(line for line in lines if line.startswith("jobs/j/tasks/t1/outputs/res/a.txt"))
    assert row.split()[1:] == ["6", hashlib.sha256(b"alpha\n").hexdigest()]


def test_logs_follow_reads_from_the_offset_until_the_attempt_ends(api: str) -> None:
    done = run(api, "logs", "j", "t1", "--follow")
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"".join(LOG_PAGES)
    # Each request asked from where the previous page ended; the last came after the log was complete.
    ends = [len(b"".join(LOG_PAGES[:count])) for count in range(len(LOG_PAGES) + 1)]
    assert FakeFilesApi.log_offsets == ends


def test_logs_follow_waits_for_a_queued_task_to_start(api: str) -> None:
    FakeFilesApi.queued_polls = 2
    done = run(api, "logs", "j", "t1", "--follow")
    assert done.returncode == 0, done.stderr
    assert done.stderr.count(b"waiting for task t1 to start") == 1
    assert done.stdout == b"".join(LOG_PAGES)


def test_logs_of_a_queued_task_without_follow_is_the_apis_error(api: str) -> None:
    FakeFilesApi.queued_polls = 1
    done = run(api, "logs", "j", "t1")
    assert done.returncode == 1 and b"not started yet" in done.stderr


def test_follow_does_not_wait_for_a_task_that_ended_without_a_log(api: str) -> None:
    FakeFilesApi.queued_polls, FakeFilesApi.task_state = 1, "Cancelled"
    done = run(api, "logs", "j", "t1", "--follow")
    assert done.returncode == 1 and b"not started yet" in done.stderr


def test_logs_without_follow_prints_what_exists_and_stops(api: str) -> None:
    done = run(api, "logs", "j", "t1")
    assert done.returncode == 0
    assert done.stdout == LOG_PAGES[0] + LOG_PAGES[1]  # the log grew while it was read; it stops at an empty page


def test_upload_sends_files_by_name_and_folders_by_their_inner_paths(api: str, tmp_path: Path) -> None:
    folder = tmp_path / "set"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.csv").write_bytes(b"1,2\n")
    (folder / "sub" / "b.txt").write_bytes(b"b")
    single = tmp_path / "extra.json"
    single.write_text(json.dumps({"k": 1}))
    done = run(api, "upload", "my-set", str(folder), str(single))
    assert done.returncode == 0, done.stderr
    assert FakeFilesApi.uploads == {
        "/api/storage/my-set/a.csv": b"1,2\n",
        "/api/storage/my-set/sub/b.txt": b"b",
        "/api/storage/my-set/extra.json": b'{"k": 1}',
    }
    assert b"[3/3]" in done.stderr


def test_follow_stays_on_its_attempt_and_then_reads_the_retry_whole(api: str) -> None:
    FakeFilesApi.retry = True
    done = run(api, "logs", "j", "t1", "--follow")
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"".join(RETRY_LOGS[1] + RETRY_LOGS[2])
    assert b"--- attempt 2 of task t1 (stdout) ---" in done.stderr
    asked = [(query.get("attempt"), int(query.get("offset", 0))) for query in FakeFilesApi.log_queries]
    first = len(RETRY_LOGS[1][0])
    # Only the first request leaves the attempt to the server; attempt 1 is read on after the retry has started
    # (request 5 on), and attempt 2 from its start.
    assert asked[0] == (None, 0) and all(attempt is not None for attempt, _ in asked[1:])
    assert asked[1] == ("1", first) and ("2", 0) in asked
    assert [attempt for attempt, _ in asked[1:]] == sorted(attempt for attempt, _ in asked[1:] if attempt)


def test_follow_of_a_given_attempt_stops_when_it_ends(api: str) -> None:
    FakeFilesApi.retry = True
    done = run(api, "logs", "j", "t1", "--follow", "--attempt", "1")
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"".join(RETRY_LOGS[1]) and b"attempt 2" not in done.stderr
    assert {query.get("attempt") for query in FakeFilesApi.log_queries} == {"1"}


def test_an_upload_over_the_limit_is_refused_before_anything_is_sent(api: str, tmp_path: Path) -> None:
    small, big = tmp_path / "small.txt", tmp_path / "big.bin"
    small.write_bytes(b"s")
    with big.open("wb") as out:
        out.truncate(INPUT_MAX_BYTES + 1)  # sparse: no disk written
    done = run(api, "upload", "set", str(small), str(big))
    assert done.returncode == 1
    assert f"at most {INPUT_MAX_BYTES} bytes".encode() in done.stderr and b"big.bin" in done.stderr
    assert FakeFilesApi.uploads == {}  # not even the small file went


def test_upload_refuses_two_sources_with_one_name(tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "x").write_bytes(b"1")
    (tmp_path / "two").mkdir()
    (tmp_path / "two" / "x").write_bytes(b"2")
    with pytest.raises(FilesError, match="would both be uploaded as 'x'"):
        upload_plan([tmp_path / "one", tmp_path / "two"])


def test_a_symlinked_folder_that_points_outside_is_refused(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "link").symlink_to(outside)
    with pytest.raises(FilesError, match="resolves outside"):
        local_target(root, "link/file.txt", "")
    assert local_target(root, "jobs/j/tasks/t/outputs/a/b.txt", "jobs/j/tasks/t/outputs/") == root / "a" / "b.txt"
