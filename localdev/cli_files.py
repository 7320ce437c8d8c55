"""`acibatch upload | files | download | logs`: moving a tenant's data in and out, and reading whole logs.

Downloads go to a temporary name beside the target and are renamed only after their size and sha256 match what
the task recorded, so an interrupted or corrupted download never leaves a file that looks complete. Names come
from the server: one that would land outside the target folder is refused, never written.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any, TextIO

from acibatch.filelimits import INPUT_MAX_BYTES, LOG_OFFSET_MAX
from localdev.client import ApiCallError, BatchClient, LogPage

CHUNK_BYTES = 1024 * 1024
FOLLOW_INTERVAL_SECONDS = 1.0
DEFAULT_DESTINATION = "default"


class FilesError(Exception):
    """A problem with what the command was given or got (printed, exit 1)."""


def add_parsers(commands: Any) -> None:
    upload = commands.add_parser("upload", help="upload files or folders as an input set (autoStorageContainerName)")
    upload.add_argument("name", help="the input set's name, as resourceFiles' autoStorageContainerName gives it")
    upload.add_argument("paths", nargs="+", help="files (uploaded by their name) and folders (their files, by "
                        "their path inside the folder)")  # fmt: skip
    files = commands.add_parser("files", help="list a task's output files (name, size, sha256)")
    files.add_argument("job")
    files.add_argument("task")
    download = commands.add_parser("download", help="download the outputs of a task, or of every task of a job")
    download.add_argument("job")
    download.add_argument("task", nargs="?")
    download.add_argument("--to", default=".", help="target folder (default: the current one)")
    logs = commands.add_parser("logs", help="print a task's log (whole, from storage, when the task has one)")
    logs.add_argument("job")
    logs.add_argument("task")
    logs.add_argument("--tail", type=int, help="only the last N lines")
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing until the attempt ends")
    logs.add_argument("--stream", choices=["stdout", "stderr"], default="stdout")
    logs.add_argument("--attempt", type=int, help="an earlier attempt (default: the latest)")


def run(args: argparse.Namespace, client: BatchClient) -> int:
    if args.command == "upload":
        return upload(client, args.name, [Path(path) for path in args.paths], args.json)
    if args.command == "files":
        return list_files(client, args.job, args.task, args.json)
    if args.command == "download":
        return download(client, args.job, args.task, Path(args.to))
    return print_logs(client, args)


# -- upload ----------------------------------------------------------------------------------------------------


def upload_plan(paths: list[Path]) -> list[tuple[Path, str]]:
    """(local file, name in the set) for every file: a file by its own name, a folder's files by their path
    inside it. Two sources with the same name are refused rather than one silently replacing the other."""
    plan: dict[str, Path] = {}
    for path in paths:
        if path.is_dir():
            found = [(file, file.relative_to(path).as_posix()) for file in sorted(path.rglob("*")) if file.is_file()]
        elif path.is_file():
            found = [(path, path.name)]
        else:
            raise FilesError(f"{path} is neither a file nor a folder")
        for file, name in found:
            if name in plan and plan[name] != file:
                raise FilesError(f"{plan[name]} and {file} would both be uploaded as '{name}': upload them apart")
            plan[name] = file
    return [(file, name) for name, file in plan.items()]


def check_sizes(plan: list[tuple[Path, str]]) -> list[int]:
    """Each file's size; every file over the API's limit is named before anything is sent (the server would
    refuse it only after the whole body had been sent)."""
    sizes = [file.stat().st_size for file, _ in plan]
    over = [f"{file} ({size} bytes)" for (file, _), size in zip(plan, sizes, strict=True) if size > INPUT_MAX_BYTES]
    if over:
        raise FilesError(
            f"the API takes input files of at most {INPUT_MAX_BYTES} bytes; too big: {', '.join(over[:5])}"
            + (f" and {len(over) - 5} more" if len(over) > 5 else "")
            + ". Upload bigger inputs to a container of your own and use storageContainerUrl"
        )
    return sizes


def upload(client: BatchClient, name: str, paths: list[Path], as_json: bool) -> int:
    plan = upload_plan(paths)
    if not plan:
        raise FilesError("nothing to upload: the folders given hold no files")
    sizes = check_sizes(plan)
    answers = []
    for done, ((file, blob), size) in enumerate(zip(plan, sizes, strict=True), start=1):
        with file.open("rb") as body:  # streamed: never the whole file in memory
            answers.append(client.upload_input(name, blob, body, size))
        print(f"[{done}/{len(plan)}] {blob} ({size} bytes)", file=sys.stderr, flush=True)
    print(json.dumps(answers) if as_json else f"uploaded {len(plan)} file(s) to input set '{name}'")
    return 0


# -- files -----------------------------------------------------------------------------------------------------


def list_files(client: BatchClient, job: str, task: str, as_json: bool) -> int:
    body = client.task_files(job, task)
    if as_json:
        print(json.dumps(body))
        return 0
    files = body.get("files", [])
    width = max([len(item["name"]) for item in files] + [4])
    print(f"attempt {body.get('attempt')}: {len(files)} file(s)")
    print(f"{'name':<{width}}  {'size':>12}  sha256")
    for item in files:
        mark = "" if item.get("destination", DEFAULT_DESTINATION) == DEFAULT_DESTINATION else "  (your container)"
        print(f"{item['name']:<{width}}  {item['size']:>12}  {item['sha256']}{mark}")
    return 0


# -- download --------------------------------------------------------------------------------------------------


def local_target(root: Path, name: str, strip: str) -> Path:
    """Where output `name` goes under `root` (the task's output prefix `strip` removed); refused when the name
    is absolute or would climb out of `root`."""
    relative = name[len(strip) :] if strip and name.startswith(strip) else name
    parts = PurePosixPath(relative).parts
    if not parts or relative.startswith("/") or "\\" in relative or any(part in {"..", "."} for part in parts):
        raise FilesError(f"refusing output name '{name}': it would be written outside {root}")
    target = root.joinpath(*parts)
    if not target.resolve().is_relative_to(root.resolve()):  # a symlinked folder inside root pointing out
        raise FilesError(f"refusing output name '{name}': {target} resolves outside {root}")
    return target


def output_prefix(job: str, task: str) -> str:
    # The default destination's layout (acibatch/blobstore/layout.py): shown in full by the API, shortened here.
    return f"jobs/{job}/tasks/{task}/outputs/"


def download(client: BatchClient, job: str, task: str | None, root: Path) -> int:
    tasks = [task] if task else [item["id"] for item in client.all_tasks(job)]
    wanted: list[tuple[str, dict[str, Any], Path]] = []
    for task_id in tasks:
        try:
            listed = client.task_files(job, task_id)
        except ApiCallError as error:
            if task is not None or error.status != 404:
                raise
            continue  # a task without outputs (not run, or no outputFiles) has nothing to download
        folder = root if task else root / task_id
        for item in listed.get("files", []):
            if item.get("destination", DEFAULT_DESTINATION) != DEFAULT_DESTINATION:
                print(f"skipping {item['name']}: it is in your own container", file=sys.stderr)
                continue
            wanted.append((task_id, item, local_target(folder, item["name"], output_prefix(job, task_id))))
    total = sum(int(item["size"]) for _, item, _ in wanted)
    progress = Progress(len(wanted), total, sys.stderr)
    for task_id, item, target in wanted:
        fetch_one(client, job, task_id, item, target, progress)
    progress.finish()
    print(f"downloaded {len(wanted)} file(s), {total} bytes, to {root}")
    return 0


def fetch_one(client: BatchClient, job: str, task: str, item: dict[str, Any], target: Path, progress: Progress) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    digest, size = hashlib.sha256(), 0
    try:
        with client.open_file(job, task, item["name"]) as response, partial.open("wb") as out:
            for chunk in _chunks(response):
                out.write(chunk)
                digest.update(chunk)
                size += len(chunk)
                progress.add(len(chunk))
        if size != int(item["size"]) or digest.hexdigest() != item["sha256"]:
            raise FilesError(
                f"{item['name']}: got {size} bytes with sha256 {digest.hexdigest()}, but the task recorded "
                f"{item['size']} bytes with sha256 {item['sha256']}; nothing was kept, try again"
            )
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    progress.file_done()


def _chunks(response: Any) -> Iterator[bytes]:
    while chunk := response.read(CHUNK_BYTES):
        yield chunk


class Progress:
    """A one-line progress bar on a terminal; a line per finished file otherwise."""

    def __init__(self, files: int, total: int, out: TextIO, width: int = 30):
        self.files, self.total, self.out, self.width = files, total, out, width
        self.done_files = self.done_bytes = 0
        self.terminal = out.isatty()

    def line(self) -> str:
        filled = round(self.width * self.done_bytes / self.total) if self.total else self.width
        bar = "#" * filled + "." * (self.width - filled)
        return f"[{bar}] {self.done_files}/{self.files} files, {self.done_bytes}/{self.total} bytes"

    def add(self, count: int) -> None:
        self.done_bytes += count
        if self.terminal:
            print("\r" + self.line(), end="", file=self.out, flush=True)

    def file_done(self) -> None:
        self.done_files += 1
        print(("\r" if self.terminal else "") + self.line(), end="" if self.terminal else "\n", file=self.out,
              flush=True)  # fmt: skip

    def finish(self) -> None:
        if self.terminal:
            print(file=self.out)


# -- logs ------------------------------------------------------------------------------------------------------


def print_logs(client: BatchClient, args: argparse.Namespace) -> int:
    if args.json and not args.follow:
        print(json.dumps(client.logs(args.job, args.task, tail=args.tail)))
        return 0
    out = sys.stdout.buffer
    page = first_page(client, args)
    out.write(page.content)
    out.flush()
    if not page.paged:  # ACI's log (a task without the agent): all there is, in one answer
        if args.follow:
            print("\nnote: this task has no stored log (it ran without the agent): --follow printed it once",
                  file=sys.stderr)  # fmt: skip
        return 0
    # A stored log can be longer than one answer: read on to its current end, and with --follow on until the
    # attempt has ended and nothing is left, then through the task's later attempts until the task has ended.
    # Every later page names the attempt the first one was of: the server's default (the latest) changes when a
    # retry starts, and the offset belongs to one attempt's log.
    attempt = page.attempt if page.attempt is not None else args.attempt
    while True:
        if page.content:
            page = client.log_page(args.job, args.task, args.stream, attempt, offset=page.next_offset)
        elif not args.follow:
            break
        elif not page.complete:
            time.sleep(FOLLOW_INTERVAL_SECONDS)
            page = client.log_page(args.job, args.task, args.stream, attempt, offset=page.next_offset)
        elif args.attempt is not None or attempt is None:
            break  # the attempt asked for (or the only one a server without attempts has) has ended
        elif (page.latest_attempt or attempt) > attempt:
            attempt += 1
            print(f"\n--- attempt {attempt} of task {args.task} ({args.stream}) ---", file=sys.stderr, flush=True)
            page = attempt_page(client, args, attempt, 0, page.latest_attempt or attempt)
        elif page.task_ended:
            break
        else:  # the attempt has ended; the task may still start another
            time.sleep(FOLLOW_INTERVAL_SECONDS)
            page = attempt_page(client, args, attempt, page.next_offset, page.latest_attempt or attempt)
        out.write(page.content)
        out.flush()
    return 0


def attempt_page(client: BatchClient, args: argparse.Namespace, attempt: int, offset: int, latest: int) -> LogPage:
    """A page of an attempt after the first one's. An attempt that stored no log (its agent never started) is
    said on stderr and stands as an ended, empty page: the loop then moves on when the task has a later attempt."""
    try:
        return client.log_page(args.job, args.task, args.stream, attempt, offset=offset)
    except ApiCallError as error:
        if not (error.status == 404 and error.code == "LogNotAvailable"):
            raise
        print(f"note: {error.message}", file=sys.stderr, flush=True)
    if attempt < latest:
        return LogPage(b"", 0, complete=True, attempt=attempt, latest_attempt=latest)
    # It was the latest the last page knew of. An ended latest attempt means the task has ended, unless a later
    # attempt started meanwhile: a page of the latest, read past any end so it carries no bytes, tells which.
    try:
        probe = client.log_page(args.job, args.task, args.stream, None, offset=LOG_OFFSET_MAX)
    except ApiCallError as error:
        if not (error.status == 404 and error.code == "LogNotAvailable"):
            raise
        return LogPage(b"", 0, complete=True, attempt=attempt, latest_attempt=attempt, task_ended=True)
    latest = max(latest, probe.latest_attempt or latest)
    return LogPage(b"", 0, complete=True, attempt=attempt, latest_attempt=latest, task_ended=probe.task_ended)


ENDED_STATES = {"Succeeded", "Failed", "Cancelled", "Skipped"}


def first_page(client: BatchClient, args: argparse.Namespace) -> LogPage:
    """The log's first page; with --follow, a task that has not started yet is waited for (said once on stderr)."""
    said = False
    while True:
        try:
            return client.log_page(args.job, args.task, args.stream, args.attempt, tail=args.tail)
        except ApiCallError as error:
            if not (args.follow and error.status == 404 and error.code == "LogNotAvailable"):
                raise
            # No log yet: wait while the task may still start (it may have started since), not once it has ended.
            if client.task(args.job, args.task).get("state") in ENDED_STATES:
                raise
        if not said:
            print(f"waiting for task {args.task} to start...", file=sys.stderr, flush=True)
            said = True
        time.sleep(FOLLOW_INTERVAL_SECONDS)
