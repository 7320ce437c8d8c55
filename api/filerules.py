"""The pure rules of the files API: what a request may name (input sets, input paths, output names, log
streams), how a log page is cut and tailed. No I/O here, so every rule is tested on its own.

A name that would climb out of its prefix (`..`), an absolute path or an empty segment is refused with a 400 that
says what to fix: blob names are flat strings, so `a/../b` would not escape anything in storage, but the CLI and
the agent turn names into local paths, and one name must mean one file everywhere.
"""

from __future__ import annotations

from acibatch.blobstore.layout import LogStream
from acibatch.filelimits import INPUT_PATH_MAX_CHARS
from acibatch.filespec import CONTAINER_NAME_RULE, MAX_CONTAINER_NAME_CHARS
from api.common import ApiError


def input_set_name(raw: str) -> str:
    # A set's name is a container-name segment, as `autoStorageContainerName` is (acibatch/filespec.py).
    if not (len(raw) <= MAX_CONTAINER_NAME_CHARS and CONTAINER_NAME_RULE.fullmatch(raw)):
        raise ApiError(
            400,
            "InvalidInputName",
            f"input set name '{raw[:80]}' is invalid: use 1-{MAX_CONTAINER_NAME_CHARS} lowercase letters, digits and "
            "single '-', starting and ending with a letter or digit (it is what autoStorageContainerName names)",
        )
    return raw


def relative_path(raw: str, what: str) -> str:
    """A `/`-separated relative path with no empty, `.` or `..` segment (400 naming `what` otherwise)."""
    problem = None
    if not raw:
        problem = "is empty"
    elif raw.startswith("/") or "\\" in raw:
        problem = "must be relative, with '/' between folders"
    elif any(segment in {"", ".", ".."} for segment in raw.split("/")):
        problem = "has an empty, '.' or '..' segment"
    elif any(ord(char) < 0x20 or ord(char) == 0x7F for char in raw):
        problem = "has a control character"
    if problem:
        raise ApiError(400, "InvalidPath", f"{what} '{raw[:120]}' {problem}; give a path like 'dir/file.csv'")
    return raw


def input_path(raw: str) -> str:
    path = relative_path(raw, "the input file path")
    if len(path) > INPUT_PATH_MAX_CHARS:
        raise ApiError(
            400, "InvalidPath", f"the input file path is {len(path)} characters; the limit is {INPUT_PATH_MAX_CHARS}"
        )
    return path


def log_stream(raw: str | None) -> LogStream:
    if raw is None:
        return LogStream.STDOUT
    try:
        return LogStream(raw)
    except ValueError:
        allowed = " or ".join(str(stream) for stream in LogStream)
        raise ApiError(400, "InvalidQuery", f"query parameter 'stream' must be {allowed}, not '{raw[:40]}'") from None


def whole_characters(data: bytes) -> bytes:
    """`data` without a UTF-8 sequence cut short at its end (a page boundary can fall inside a character; the
    next page then starts at that character). Bytes that are not UTF-8 at all are kept as they are."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte < 0x80:  # ASCII: nothing is cut
            return data
        if byte in (0xC0, 0xC1) or byte >= 0xF5:  # never in UTF-8: not text, keep it
            return data
        if byte >= 0xC0:  # a lead byte: is its sequence complete?
            needed = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return data if back >= needed else data[:-back]
    return data


def last_lines(data: bytes, count: int) -> bytes:
    """The last `count` lines of `data` (a trailing newline does not count as an empty last line)."""
    body = data[:-1] if data.endswith(b"\n") else data
    cut = len(body)
    for _ in range(count):
        cut = body.rfind(b"\n", 0, cut)
        if cut < 0:
            return data
    return data[cut + 1 :]


def output_name(raw: str) -> str:
    return relative_path(raw, "the output name")
