"""`sidecar`: streams the logs while the user's command runs, then uploads outputs, writes result.json and
reports to acibatch. It always exits 0: what went wrong is in the result, not in the container's exit code."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from typing import Any

from . import report, storage
from .layout import Layout, open_regular, parse_manifest, read_small, redact, scrub, write_new
from .logstream import LogStream
from .uploads import upload_outputs

PRE_PROCESSING = "preProcessingError"
FILE_UPLOAD = "fileUploadError"
# The wrapper touches state/alive every few seconds while the command runs; a container killed outright (the
# wrapper never recorded an exit) leaves it stale.
HEARTBEAT_TIMEOUT = float(os.environ.get("ACIBATCH_HEARTBEAT_TIMEOUT", "60"))
# How long the sidecar waits for the wrapper to begin (state/started) before it gives the attempt up. The task
# container may still be pulling its image when the sidecar starts (ACI does not document that every image of a
# group is pulled before any container starts), so this is generous; a wrapper that never begins (an image without
# /bin/sh, a command ACI could not start) would otherwise hold the group until the task's timeout.
# acibatch passes its BATCH_AGENT_START_TIMEOUT_SECONDS (never more than the task's timeout) as ACIBATCH_START_TIMEOUT.
START_TIMEOUT = float(os.environ.get("ACIBATCH_START_TIMEOUT", "1800"))
# The exit record the sidecar writes when it gives up on the wrapper: the wrapper replays the code (the first
# word) if it starts later, so the command never runs after the attempt was reported; the second word tells the
# sidecar the record is its own, not the command's.
GAVE_UP_CODE = 127
GAVE_UP_MARK = "not-started"
EXIT_CHECK_SECONDS = 0.1  # how often the sidecar looks for the exit record between log appends
NEVER_STARTED = (
    "the task container never ran the agent's wrapper /acibatch/bin/run: does the image have /bin/sh (and could"
    " ACI start the container)? The command did not run"
)


class NeverStarted(Exception):
    """The wrapper did not begin within START_TIMEOUT."""


def read_json(path: str) -> dict[str, Any] | None:
    data = read_small(path)
    try:
        value = json.loads(data) if data is not None else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def read_exit(layout: Layout) -> int | None:
    """The command's exit code as the wrapper recorded it; None when there is none (or it is the sidecar's own)."""
    data = read_small(layout.exit, 32)
    try:
        return int(data.strip()) if data is not None else None
    except ValueError:
        return None


def gave_up_here(layout: Layout) -> bool:
    """Whether state/exit is the record the sidecar wrote when it gave up on the wrapper."""
    data = read_small(layout.exit, 64)
    return data is not None and data.split() == [str(GAVE_UP_CODE).encode(), GAVE_UP_MARK.encode()]


def give_up(layout: Layout) -> bool:
    """Record GAVE_UP_CODE in state/exit unless a record is there already (the wrapper's: never overwritten);
    whether the sidecar's record is the one in place. Linked into place, so it appears whole and never replaces
    the wrapper's record written a moment before."""
    temporary = f"{layout.exit}.{os.getpid()}.gaveup"
    write_new(temporary, f"{GAVE_UP_CODE} {GAVE_UP_MARK}\n".encode())
    try:
        os.link(temporary, layout.exit)
    except FileExistsError:
        pass
    except OSError:
        # A volume without hard links: a rename, only while there is no record (a tiny window remains).
        if not os.path.lexists(layout.exit):
            os.replace(temporary, layout.exit)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
    return gave_up_here(layout)


def stale(layout: Layout) -> bool:
    """The command started but its container is gone without recording an exit code. An image without `sleep`
    has no heartbeat: the wrapper writes `off` and the sidecar waits for the exit record alone. Before the first
    heartbeat the start record's age counts (a container killed in between has nothing else)."""
    for path in (layout.alive, layout.started):
        try:
            with open_regular(path) as handle:
                if path == layout.alive and handle.read(8).strip() == b"off":
                    return False
                return time.time() - os.fstat(handle.fileno()).st_mtime > HEARTBEAT_TIMEOUT
        except OSError:
            continue
    return False


def _warn(message: str) -> None:
    print(f"acibatch agent: {scrub(message)}", file=sys.stderr, flush=True)


class Sidecar:
    def __init__(self, layout: Layout, manifest: dict[str, Any]) -> None:
        self.layout, self.manifest = layout, manifest
        self.warned: set[str] = set()
        logs = manifest.get("logs") or {}
        self.streams = {
            stream: LogStream(layout.log(stream), logs[stream], layout.root, layout.log_base(stream))
            for stream in ("stdout", "stderr")
            if stream in logs
        }

    def _warn_once(self, message: str) -> None:
        # A failure that repeats every tick (a SAS without the right permission) is said once, not each second.
        if message not in self.warned:
            self.warned.add(message)
            _warn(message)

    def start_logs(self) -> None:
        for stream, log in self.streams.items():
            try:
                log.start()
            except storage.StorageError as error:
                self._warn_once(f"{stream} log: {error}")

    def pump(self) -> str | None:
        """Move new log bytes to blob storage; the stream that failed, if any (retried on the next tick)."""
        for stream, log in self.streams.items():
            try:
                log.pump()
            except (storage.StorageError, OSError) as error:
                self._warn_once(f"{stream} log: {error}")
                return stream
        return None

    def wait_for_exit(self) -> int | None:
        """The command's exit code; None when its container ended without one. Raises NeverStarted."""
        began = time.monotonic()
        self.start_logs()
        next_pump = 0.0
        gave_up = False
        while True:
            if not (gave_up and gave_up_here(self.layout)):
                code = read_exit(self.layout)
                if code is not None:
                    return code
                if os.path.lexists(self.layout.exit):
                    return None
            if stale(self.layout):
                return None
            if not os.path.lexists(self.layout.started):
                # Gave up already: the wrapper took its start back on seeing the record (or never began).
                if gave_up:
                    raise NeverStarted()
                if time.monotonic() - began > START_TIMEOUT:
                    # Record an exit first, then look again: a wrapper that began in between runs its command
                    # and its record replaces this one; one that begins later replays it and runs nothing.
                    gave_up = True
                    if give_up(self.layout) and not os.path.lexists(self.layout.started):
                        raise NeverStarted()
                    continue
            now = time.monotonic()
            if now >= next_pump:
                self.pump()
                next_pump = now + min((log.interval() for log in self.streams.values()), default=1.0)
            # The exit record is looked for more often than the logs are appended: the task's end (and so its
            # uploads and report) should not wait for the next append.
            time.sleep(EXIT_CHECK_SECONDS)

    def run(self) -> dict[str, Any]:
        stagein = read_json(self.layout.stagein)
        exit_code: int | None = None
        failure: dict[str, Any] | None = None
        outputs: list[dict[str, Any]] = []
        if stagein is None:
            failure = {"category": PRE_PROCESSING, "message": "stage-in recorded no outcome", "file": None}
        elif not stagein.get("ok"):
            failure = {"category": PRE_PROCESSING, "message": stagein.get("message"), "file": stagein.get("file")}
        if failure is None:
            try:
                exit_code = self.wait_for_exit()
            except NeverStarted:
                # Batch's preProcessingError is "the task could not start": the command never ran, as when an
                # input could not be staged in, and retrying it on the same image would not help by default.
                failure = {"category": PRE_PROCESSING, "message": NEVER_STARTED, "file": None}
        else:
            self.start_logs()
        failed_log = self.pump()  # the final flush
        if failure is None:
            outputs, error = upload_outputs(self.layout.wd, self.manifest.get("outputs") or [], exit_code)
            if error is not None:
                failure = {"category": FILE_UPLOAD, "message": scrub(str(error)), "file": error.file}
            elif failed_log is not None:
                failure = {
                    "category": FILE_UPLOAD,
                    "message": f"the {failed_log} log could not be saved",
                    "file": f"{failed_log}.txt",
                }
        result = {
            "version": 1,
            "attempt": self.manifest.get("attempt"),
            "exitCode": exit_code,
            "failure": failure,
            "outputs": outputs,
            "logs": {stream: log.offset for stream, log in self.streams.items()},
        }
        if self.manifest.get("result"):
            try:
                storage.put_blob(
                    self.manifest["result"], json.dumps(result).encode(), f"writing {redact(self.manifest['result'])}"
                )
            except storage.StorageError as error:
                _warn(str(error))
                # Without result.json the task's files cannot be listed or fetched: the attempt did not save them.
                if result["failure"] is None:
                    result["failure"] = {
                        "category": FILE_UPLOAD,
                        "message": scrub(f"the agent could not save its result: {error}"),
                        "file": "result.json",
                    }
        return result


def agent_report(result: dict[str, Any]) -> dict[str, Any]:
    outputs = result["outputs"]
    return {
        "status": "completed",
        "exitCode": result["exitCode"],
        "outputs": {"count": len(outputs), "bytes": sum(item["size"] for item in outputs)},
        "failure": result["failure"],
    }


def sidecar(layout: Layout) -> dict[str, Any] | None:
    try:
        with open(layout.manifest, "rb") as handle:
            raw = handle.read()
        stagein = read_json(layout.stagein) or {}
        run = stagein.get("run")
        reported = layout.reported(raw, run if isinstance(run, str) else "")
        if os.path.exists(reported):
            return None  # a restart after the attempt was reported: everything is done already
        manifest = parse_manifest(raw)
    except (OSError, ValueError) as error:
        _warn(f"cannot read the manifest: {error}")
        failure = {"category": PRE_PROCESSING, "message": "the agent could not read its manifest", "file": None}
        report.post({"status": "completed", "exitCode": None, "outputs": {"count": 0, "bytes": 0}, "failure": failure})
        return None
    result = Sidecar(layout, manifest).run()
    if report.post(agent_report(result)):
        try:
            with open(reported, "w", encoding="utf-8"):
                pass
        except OSError as error:
            _warn(f"cannot mark the report sent: {error.strerror}")
    return result


def main() -> int:
    try:
        result = sidecar(Layout())
    except Exception as error:  # the sidecar must not fail the group; acibatch's poll backstop takes over
        _warn(f"sidecar failed: {type(error).__name__}: {error}")
        return 0
    if result is not None:
        failure = result["failure"]
        _warn(
            f"done: exit code {result['exitCode']}, {len(result['outputs'])} outputs"
            + (f", {failure['category']}: {failure['message']}" if failure else "")
        )
    return 0
