"""The bounds of the files API (api/files.py, api/tasklogs.py), in one place so the OpenAPI document states
exactly what the handlers enforce. Pure constants: importing this loads no storage client."""

from __future__ import annotations

from acibatch.filespec import MAX_CONTAINER_NAME_CHARS, MAX_PATH_CHARS

# The Functions host refuses request bodies over 100 MiB (FUNCTIONS_REQUEST_BODY_SIZE_LIMIT's default), so an
# uploaded input file is at most that; bigger data belongs in a container the tenant gives as storageContainerUrl.
INPUT_MAX_BYTES = 100 * 1024 * 1024
# An output is answered in one response held in the worker's memory: bigger ones are refused, never truncated.
DOWNLOAD_MAX_BYTES = 100 * 1024 * 1024
# One logs answer at most (a blob read of this size is one request); the client pages with the offset header.
LOG_PAGE_MAX_BYTES = 4 * 1024 * 1024
LOG_OFFSET_MAX = 2**42  # beyond any append blob (50,000 blocks of at most 4 MiB)
MAX_TAIL_LINES = 100_000
# The logs route's `attempt` as syntax; the task's own attempt count is checked against its record.
LOG_ATTEMPT_MAX = 10**6
INPUT_LIST_DEFAULT, INPUT_LIST_MAX = 1000, 5000

# A relative blob path as the files API takes one (an input's path, an output's name): '/' between non-empty
# segments, none of them '.' or '..', no backslash or control character. Written without look-arounds so JSON
# Schema tools (and request generators) read it; api/filerules.py enforces the same rule with messages per case.
_CHAR = r"[^/\\\x00-\x1f\x7f]"
_FIRST = r"[^/\\.\x00-\x1f\x7f]"
_SEGMENT = rf"(?:{_FIRST}{_CHAR}*|\.{_FIRST}{_CHAR}*|\.\.{_CHAR}+)"
RELATIVE_PATH_PATTERN = rf"^{_SEGMENT}(?:/{_SEGMENT})*$"
# A path travels in the URL: web servers refuse a request line over 8 KiB before the app sees it (Kestrel's
# MaxRequestLineSize default is 8,192 bytes; aiohttp, under devhost, 8,190), and one character can take 12 bytes
# percent-encoded, so a path in a route is at most this many characters.
ROUTE_PATH_MAX_CHARS = 600
# An input blob is `inputs/<set>/<path>` and a blob name is at most MAX_PATH_CHARS characters (Blob REST "Naming and
# referencing containers, blobs, and metadata"); the URL's bound is the tighter one.
INPUT_PATH_MAX_CHARS = min(ROUTE_PATH_MAX_CHARS, MAX_PATH_CHARS - len("inputs/") - MAX_CONTAINER_NAME_CHARS - 1)
