"""Azure Batch's output file patterns and blob names.

Patterns are relative to the working directory and use `/`: `*` (within one path segment), `**` (any number of
directories), `?`, `[abc]`, `[a-c]`, `[!abc]`; a name that starts with `.` matches only a pattern segment that
starts with `.` (so `*.gif` skips `.a.gif`, `.*.gif` does not, and `**` does not walk into dot-directories).
Batch's naming: a pattern without wildcards uploads to `path` itself (or the file's name when no path is given);
a pattern with wildcards uploads each file to `path/<its path below the pattern's fixed leading directories>`.
In the manifest a `path` that is empty or ends in `/` names a virtual directory, never a blob. A pattern that ends
in `**` (`**`, `out/**`) takes every file below, as users expect from the other glob tools.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

WILDCARDS = "*?["


def has_wildcards(pattern: str) -> bool:
    return any(char in pattern for char in WILDCARDS)


def _segment_regex(segment: str) -> re.Pattern[str]:
    out, index = [], 0
    while index < len(segment):
        char = segment[index]
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = segment.find("]", index + 2 if segment[index + 1 : index + 2] in ("!", "]") else index + 1)
            if end == -1:
                out.append(re.escape(char))
            else:
                body = segment[index + 1 : end]
                negate = body.startswith("!")
                body = body[1:] if negate else body
                body = body.replace("\\", "\\\\").replace("^", "\\^")
                out.append(f"[{'^' if negate else ''}{body}]")
                index = end
        else:
            out.append(re.escape(char))
        index += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def _matches(segments: list[str], parts: list[str]) -> bool:
    if not segments:
        return not parts
    head = segments[0]
    if head == "**" and len(segments) == 1:
        # A trailing `**`: any file at any depth below, but nothing inside or named with a leading dot.
        return bool(parts) and not any(part.startswith(".") for part in parts)
    if head == "**":
        # Zero directories, or one more (not a dot-directory) and try again.
        if _matches(segments[1:], parts):
            return True
        return len(parts) > 1 and not parts[0].startswith(".") and _matches(segments, parts[1:])
    if not parts:
        return False
    if parts[0].startswith(".") and not head.startswith("."):
        return False
    return bool(_segment_regex(head).match(parts[0])) and _matches(segments[1:], parts[1:])


def split(pattern: str) -> tuple[str, list[str]]:
    """The pattern's fixed leading directories (no wildcards) and the rest, as segments."""
    segments = [part for part in pattern.replace("\\", "/").split("/") if part not in ("", ".")]
    fixed: list[str] = []
    while len(segments) > 1 and not has_wildcards(segments[0]):
        fixed.append(segments.pop(0))
    return "/".join(fixed), segments


def find(wd: str, pattern: str) -> Iterator[str]:
    """Files under `wd` matching `pattern`, as sorted paths relative to `wd` with `/`. Symbolic links are never
    followed: the user's command could point one at the agent's secrets."""
    fixed, rest = split(pattern)
    if ".." in fixed.split("/") or ".." in rest:
        return
    start = os.path.join(wd, *fixed.split("/")) if fixed else wd
    if not has_wildcards("/".join(rest)):
        path = os.path.join(start, *rest)
        if os.path.isfile(path) and not os.path.islink(path):
            yield "/".join([*([fixed] if fixed else []), *rest])
        return
    found = []
    for directory, dirnames, filenames in os.walk(start, followlinks=False):
        dirnames.sort()
        below = os.path.relpath(directory, start)
        prefix = [] if below == "." else below.split(os.sep)
        for name in filenames:
            full = os.path.join(directory, name)
            if os.path.islink(full) or not os.path.isfile(full):
                continue
            if _matches(rest, [*prefix, name]):
                found.append("/".join([*([fixed] if fixed else []), *prefix, name]))
    yield from sorted(found)


def unsafe_blob_name(name: str) -> str | None:
    """Why the service would not store `name` as given, or None. The service reads `\\` as `/`, and Azure then
    resolves `.` and `..` segments, so a file the task names `out/..\\..\\x` would land outside the output
    prefix, over another blob of the tenant. The naming rules also say no segment may end with a dot."""
    for segment in name.replace("\\", "/").split("/"):
        if segment in (".", ".."):
            return f"a '{segment}' path segment (Blob storage reads '\\' as '/')"
        if not segment:
            return "an empty path segment (two '/' or '\\' in a row, or one at an end)"
        if segment.endswith("."):
            return f"the path segment '{segment}' ending with '.', which Blob storage does not allow"
    return None


def blob_name(pattern: str, path: str, file: str) -> str:
    """The blob name for `file` (relative to wd, `/`-separated) matched by `pattern`, uploaded with `path`."""
    if not has_wildcards(pattern):
        if path and not path.endswith("/"):
            return path
        return path + file.rsplit("/", 1)[-1]
    fixed, _ = split(pattern)
    below = file[len(fixed) + 1 :] if fixed else file
    return f"{path.rstrip('/')}/{below}" if path.rstrip("/") else below
