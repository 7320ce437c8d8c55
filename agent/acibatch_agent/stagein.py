"""`stage-in`: the init container. Lays out the shared volume, installs the wrapper and downloads the inputs.

It never fails the init container: whatever goes wrong is recorded in state/stagein.json and the process exits
0, so the group goes on to start the sidecar, which reports the failure (a `preProcessingError`).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
from typing import Any

from . import storage
from .layout import Layout, load_manifest, redact, scrub

# Shared directories are used by the user's image, which may run as another uid than the agent.
SHARED_DIR_MODE = 0o777
SHARED_LOG_MODE = 0o666
DEFAULT_FILE_MODE = "0770"
WRAPPER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "run.sh")


class InputError(Exception):
    def __init__(self, file: str, message: str) -> None:
        super().__init__(message)
        self.file = file


def target_path(wd: str, relative: str) -> str:
    """`relative` under the working directory, refused when it is absolute or climbs out with `..` (a blob name
    is chosen by whoever can write the container, so it is checked like a spec path)."""
    parts = relative.replace("\\", "/").split("/")
    if relative.startswith("/") or ".." in parts:
        raise InputError(relative, f"{relative!r} would be written outside the task's working directory")
    cleaned = [part for part in parts if part not in ("", ".")]
    if not cleaned:
        raise InputError(relative, "an input needs a file name inside the working directory")
    return os.path.join(wd, *cleaned)


def _make_dir(path: str) -> None:
    os.makedirs(path, exist_ok=True)
    os.chmod(path, SHARED_DIR_MODE)


def _make_parents(wd: str, path: str) -> None:
    parent = os.path.dirname(path)
    relative = os.path.relpath(parent, wd)
    current = wd
    for part in [] if relative == "." else relative.split(os.sep):
        current = os.path.join(current, part)
        if not os.path.isdir(current):
            _make_dir(current)


def _fetch(url: str, path: str, file: str, mode: str, what: str, wd: str) -> None:
    _make_parents(wd, path)
    partial = path + ".acibatch-partial"
    try:
        with open(partial, "wb") as handle:
            storage.download(url, handle, what)
    except storage.StorageError as error:
        os.unlink(partial)
        raise InputError(file, str(error)) from None
    except OSError:
        if os.path.exists(partial):
            os.unlink(partial)
        raise
    os.chmod(partial, int(mode, 8))
    os.replace(partial, path)


def stage_http(item: dict[str, Any], wd: str) -> int:
    file = item["filePath"]
    path = target_path(wd, file)
    _fetch(item["url"], path, file, item.get("fileMode") or DEFAULT_FILE_MODE, f"downloading {redact(item['url'])}", wd)
    return 1


def stage_container(item: dict[str, Any], wd: str) -> int:
    container_url = item["containerUrl"]
    prefix, strip = item.get("blobPrefix") or "", item.get("stripPrefix") or ""
    base = item.get("filePath") or ""
    mode = item.get("fileMode") or DEFAULT_FILE_MODE
    try:
        names = list(storage.list_blobs(container_url, prefix))
    except storage.StorageError as error:
        raise InputError(base or prefix or "(container)", str(error)) from None
    count = 0
    for name in names:
        if name.endswith("/"):
            continue  # a folder placeholder some tools create; nothing to download
        relative = name[len(strip) :] if strip and name.startswith(strip) else name
        shown = f"{base}/{relative}" if base else relative
        path = target_path(wd, shown)
        url = storage.blob_url(container_url, name)
        _fetch(url, path, shown, mode, f"downloading blob {name!r} from {redact(container_url)}", wd)
        count += 1
    return count


def prepare(layout: Layout) -> None:
    for directory in (layout.root, layout.wd, layout.bin, layout.logs, layout.state):
        _make_dir(directory)
    for stream in ("stdout", "stderr"):
        with open(layout.log(stream), "ab"):
            pass
        os.chmod(layout.log(stream), SHARED_LOG_MODE)
    shutil.copyfile(WRAPPER, layout.run + ".tmp")
    os.chmod(layout.run + ".tmp", 0o755)
    os.replace(layout.run + ".tmp", layout.run)


def record(layout: Layout, outcome: dict[str, Any]) -> None:
    """Write stagein.json atomically, on one line (the sh wrapper reads it with `read`)."""
    temporary = layout.stagein + ".tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(outcome) + "\n")
    os.chmod(temporary, 0o644)
    os.replace(temporary, layout.stagein)


def stage_in(layout: Layout) -> dict[str, Any]:
    """Run the whole stage-in; the outcome written to stagein.json, with a random `run` id: each start of the
    group stages in afresh, so the id tells the sidecar a new run of the group from a restart of itself."""
    run = secrets.token_hex(12)
    try:
        prepare(layout)
        manifest = load_manifest(layout)
        count = 0
        for item in manifest.get("inputs", []):
            count += stage_http(item, layout.wd) if item.get("kind") == "http" else stage_container(item, layout.wd)
        outcome: dict[str, Any] = {"ok": True, "files": count}
    except InputError as error:
        outcome = {"ok": False, "file": error.file, "message": str(error)}
    except Exception as error:  # recorded, not raised: the group must still start the sidecar
        outcome = {"ok": False, "file": None, "message": scrub(f"stage-in failed: {type(error).__name__}: {error}")}
    outcome["run"] = run
    try:
        record(layout, outcome)
    except OSError as error:
        print(f"acibatch stage-in: cannot record the outcome: {error}", file=sys.stderr)
    return outcome


def main() -> int:
    outcome = stage_in(Layout())
    state = "ok" if outcome["ok"] else f"failed: {outcome['message']}"
    print(f"acibatch stage-in {state}", file=sys.stderr)
    return 0
