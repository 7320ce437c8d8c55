"""The files API's rules (names, paths, log pages, content negotiation, reading an output, when a log is
complete) and its OpenAPI entries.

The handlers' storage and Durable parts run on the real stack in tests/integration/test_files_api.py; here each
rule is checked on its own, including that the path pattern the document publishes accepts exactly what the
handlers accept.
"""

from __future__ import annotations

import asyncio
import re
import tracemalloc
import uuid
from collections.abc import Iterator
from typing import Any

import azure.functions as func
import pytest
from hypothesis import given
from hypothesis import strategies as st

from acibatch.blobstore import layout
from acibatch.blobstore.layout import LogStream
from acibatch.blobstore.store import blob_store
from acibatch.filelimits import RELATIVE_PATH_PATTERN
from acibatch.openapi import openapi_document
from acibatch.records import TaskRecord, TaskState
from acibatch.settings import StorageSettings
from api.common import ApiError
from api.filerules import input_path, input_set_name, last_lines, log_stream, relative_path, whole_characters
from api.files import fill
from api.tasklogs import attempt_ended, wants_text

TRICKY = "aé€😀\n"


@pytest.mark.parametrize("name", ["data", "a", "set-1", "a1-b2-c3", "x" * 63])
def test_input_set_names_like_container_segments_are_accepted(name: str) -> None:
    assert input_set_name(name) == name


@pytest.mark.parametrize("name", ["", "Data", "-a", "a-", "a--b", "a_b", "a.b", "x" * 64, "a/b"])
def test_other_input_set_names_are_400_saying_the_rule(name: str) -> None:
    with pytest.raises(ApiError) as caught:
        input_set_name(name)
    assert caught.value.status == 400
    assert "lowercase letters, digits and single '-'" in caught.value.message


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("", "is empty"),
        ("/etc/passwd", "must be relative"),
        ("a\\b", "must be relative"),
        ("../secret", "'..' segment"),
        ("a/../../b", "'..' segment"),
        ("a//b", "empty"),
        ("a/./b", "'.'"),
        ("a/", "empty"),
        ("a\x00b", "control character"),
    ],
)
def test_paths_that_could_escape_or_mean_two_things_are_400(path: str, problem: str) -> None:
    with pytest.raises(ApiError) as caught:
        relative_path(path, "the input file path")
    assert caught.value.status == 400 and problem in caught.value.message
    assert "give a path like 'dir/file.csv'" in caught.value.message


def test_a_long_input_path_is_400_with_the_limit() -> None:
    with pytest.raises(ApiError) as caught:
        input_path("a" * 2000)
    assert caught.value.status == 400 and "the limit is 600" in caught.value.message


@given(st.text(alphabet=["a", "é", ".", "/", "\\", "\x01", " ", "-"], max_size=12))
def test_the_published_path_pattern_accepts_exactly_what_the_handlers_accept(path: str) -> None:
    try:
        relative_path(path, "path")
        accepted = True
    except ApiError:
        accepted = False
    assert bool(re.fullmatch(RELATIVE_PATH_PATTERN, path)) == accepted


def test_log_streams_are_stdout_by_default_and_a_bad_one_is_400() -> None:
    assert log_stream(None) is LogStream.STDOUT
    assert log_stream("stderr") is LogStream.STDERR
    with pytest.raises(ApiError) as caught:
        log_stream("both")
    assert caught.value.status == 400 and "stdout or stderr" in caught.value.message


@pytest.mark.parametrize("page", [4, 5, 7, 64])  # a page holds at least one character (real pages are 4 MiB)
def test_pages_cut_at_whole_characters_rebuild_the_log(page: int) -> None:
    # The JSON answer trims a page to whole characters and the next page starts where it stopped: every page
    # decodes on its own and together they are the log, whatever the page size.
    log = (TRICKY * 5).encode()
    offset, texts = 0, []
    while offset < len(log):
        raw = log[offset : offset + page]
        data = whole_characters(raw) or raw
        offset += len(data)
        texts.append(data.decode("utf-8", errors="replace"))
    assert "".join(texts) == TRICKY * 5


def test_a_log_that_ends_in_a_cut_character_is_still_read_to_its_end() -> None:
    cut = "ok€".encode()[:-1]  # the writer died mid-character
    assert whole_characters(cut) == b"ok"
    assert whole_characters(cut[2:]) == b""  # the rest alone: the handler then sends it as it is (no stall)


def test_whole_characters_keeps_bytes_that_are_not_utf8() -> None:
    assert whole_characters(b"\xff\xfe") == b"\xff\xfe"
    assert whole_characters(b"abc") == b"abc"


@pytest.mark.parametrize(
    ("data", "count", "tail"),
    [
        (b"a\nb\nc\n", 2, b"b\nc\n"),
        (b"a\nb\nc", 2, b"b\nc"),
        (b"a\nb\n", 5, b"a\nb\n"),
        (b"", 3, b""),
        (b"only", 1, b"only"),
    ],
)
def test_tail_keeps_the_last_lines(data: bytes, count: int, tail: bytes) -> None:
    assert last_lines(data, count) == tail


@pytest.mark.parametrize(
    ("accept", "text"),
    [
        (None, False),  # the dashboard and plain fetches: JSON, as before
        ("*/*", False),
        ("application/json", False),
        ("text/plain", True),
        ("text/plain, application/json;q=0.5", True),
        ("application/json, text/plain;q=0.5", False),
        ("text/*", True),
        ("text/plain;q=0, */*", False),
    ],
)
def test_the_log_is_raw_text_only_when_the_client_prefers_it(accept: str | None, text: bool) -> None:
    headers = {"Accept": accept} if accept else {}
    request = func.HttpRequest("GET", "http://h/api/jobs/j/tasks/t/logs", headers=headers, body=b"")
    assert wants_text(request) is text


def test_the_document_describes_the_files_routes_and_the_log_headers() -> None:
    paths = openapi_document()["paths"]
    assert set(paths["/storage/{name}/{path}"]) == {"parameters", "put"}
    assert set(paths["/storage/{name}"]) == {"parameters", "get"}
    download = paths["/jobs/{jobId}/tasks/{taskId}/files/{name}"]["get"]["responses"]
    assert "application/octet-stream" in download["200"]["content"] and "409" in download
    logs = paths["/jobs/{jobId}/tasks/{taskId}/logs"]["get"]
    assert {
        "X-Acibatch-Log-Offset", "X-Acibatch-Log-Complete", "X-Acibatch-Log-Attempt",
        "X-Acibatch-Log-Latest-Attempt", "X-Acibatch-Task-Ended",
    } <= set(logs["responses"]["200"]["headers"])  # fmt: skip
    assert {param["name"] for param in logs["parameters"]} == {"tail", "stream", "attempt", "offset"}


def _chunks(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def test_an_output_is_held_once_while_it_is_read() -> None:
    size, chunk = 32 * 1024 * 1024, 1024 * 1024
    tracemalloc.start()
    try:
        data = fill(size, (b"x" * chunk for _ in range(size // chunk)), "out/a.bin")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(data) == size and data.count(b"x") == size
    # One copy of the output and a chunk or two; joining the chunks held two copies.
    assert peak < size + 4 * chunk
    assert func.HttpResponse(data).get_body() is data  # the response keeps that copy, not another


@pytest.mark.parametrize(("recorded", "stored", "word"), [(5, b"abcdef", "grew"), (7, b"abcdef", "shrank")])
def test_an_output_that_changed_size_while_it_was_read_is_409(recorded: int, stored: bytes, word: str) -> None:
    with pytest.raises(ApiError) as caught:
        fill(recorded, _chunks(stored, 4), "out/a.txt")
    assert caught.value.status == 409 and word in caught.value.message
    assert fill(6, _chunks(b"abcdef", 4), "out/a.txt") == b"abcdef"
    assert fill(0, iter([]), "empty") == b""


@pytest.mark.azurite
def test_an_attempt_has_ended_once_its_result_exists_or_the_task_moved_on(azurite: Any) -> None:
    prefix = f"s{uuid.uuid4().hex[:8]}-"
    store = blob_store(StorageSettings(connection_string=azurite.connection_string, container_prefix=prefix))
    store.ensure_container("tenant-a")

    def ended(state: TaskState, latest: int, attempt: int) -> bool:
        record = TaskRecord(id="t0", state=state, attempt=latest)
        return asyncio.run(attempt_ended(store, "tenant-a", "j1", record, attempt))

    try:
        assert not ended(TaskState.RUNNING, 1, 1)  # running, no result.json: more log may come
        assert ended(TaskState.RUNNING, 2, 1)  # the task moved on to attempt 2
        assert ended(TaskState.FAILED, 1, 1)  # the task has ended
        # Attempt 1 finished (its agent wrote result.json after its last append) and waits for its retry.
        store._container("tenant-a").upload_blob(layout.result_blob("j1", "t0", 1), b'{"version": 1}')
        assert ended(TaskState.RUNNING, 1, 1)
        assert not ended(TaskState.RUNNING, 2, 2)
    finally:
        for container in store.client.list_containers(name_starts_with=prefix):
            store.client.delete_container(container.name)
