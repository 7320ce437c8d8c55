"""The host's side of its language workers (`devhost.worker`): start them, send invocations, collect replies.

Each worker slot is one process and one socket. An orchestration's episodes and an entity's batches always go
to the same slot (by a stable hash of the instance id), so per-process caches in user code stay warm; other
invocations go to the slot with the fewest outstanding. A worker that exits fails what it was running with
`WorkerExited` and is replaced; invocations sent meanwhile wait for the replacement.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

from devhost import wire
from devhost.app import AppIndex, AppLoadError, FunctionInfo
from devhost.binding import WORKER_SETTING

log = logging.getLogger("devhost.workers")
Reply = tuple[dict[str, Any], bytes]
STOP_GRACE_SECONDS = 5.0


class WorkerExited(Exception):
    """The worker process ended while it ran this invocation."""


class FunctionFailed(Exception):
    """The function raised; `type`, `message` and `details` (the traceback) describe it."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(str(error.get("message", "")))
        self.type = str(error.get("type", "Exception"))
        self.message = str(error.get("message", ""))
        self.details = str(error.get("details", ""))


# Frames a slot collects before it writes them at once, rather than at the end of the loop's current callback.
OUTBOX_FRAMES = 32


class Slot:
    """One worker process and what it still owes."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.process: subprocess.Popen[bytes] | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.backlog: list[bytes] = []  # frames sent while no worker was connected
        # Frames waiting for `flush`. The engine starts many invocations in one synchronous batch of steps; one
        # write per frame is one system call and one wake-up of the worker each, a large share of the host's
        # time in a busy batch. They are written together once the batch yields the loop (or every
        # OUTBOX_FRAMES), so the worker reads them in one go.
        self.outbox: list[bytes] = []
        self.outstanding: dict[int, asyncio.Future[Reply]] = {}
        self.reader_task: asyncio.Task[None] | None = None

    def send(self, frame: bytes) -> None:
        if self.writer is None:
            self.backlog.append(frame)
            return
        self.outbox.append(frame)
        if len(self.outbox) == 1:
            asyncio.get_running_loop().call_soon(self.flush)
        elif len(self.outbox) >= OUTBOX_FRAMES:
            self.flush()

    def flush(self) -> None:
        frames, self.outbox = self.outbox, []
        # Without a writer the worker has gone: `WorkerPool.lost` fails these frames' invocations, which a
        # replacement must not run as well.
        if frames and self.writer is not None:
            self.writer.write(b"".join(frames))


class WorkerPool:
    def __init__(self, app_dir: Path, count: int, host_url: str, durable_setting: str = "") -> None:
        self.app_dir = app_dir
        self.host_url = host_url
        self.durable_setting = durable_setting  # binding.worker_setting(): the RPC address and the system key
        self.slots = [Slot(number) for number in range(max(1, count))]
        self.next_id = 1
        self.stopping = False

    async def start(self) -> AppIndex:
        """Start every worker; the app's index as the first one reports it. Raises AppLoadError."""
        indexes = await asyncio.gather(*(self.spawn(slot) for slot in self.slots), return_exceptions=True)
        for result in indexes:
            if isinstance(result, BaseException):
                await self.stop()
                raise result
        first = indexes[0]
        assert isinstance(first, AppIndex)
        return first

    async def spawn(self, slot: Slot) -> AppIndex:
        ours, theirs = socket.socketpair()
        command = [sys.executable, "-m", "devhost.worker", "--app", str(self.app_dir),
                   "--fd", str(theirs.fileno()), "--host-url", self.host_url]  # fmt: skip
        env = {**os.environ, WORKER_SETTING: self.durable_setting}
        slot.process = subprocess.Popen(command, pass_fds=[theirs.fileno()], env=env)
        theirs.close()
        reader, writer = await asyncio.open_unix_connection(sock=ours)
        frame = await wire.read(reader)
        if frame is None or "ready" not in frame[0]:
            writer.close()
            slot.process.wait()
            reason = frame[0].get("failed") if frame else f"the worker exited with code {slot.process.returncode}"
            raise AppLoadError(str(reason))
        slot.writer = writer
        for pending in slot.backlog:
            writer.write(pending)
        slot.backlog.clear()
        slot.reader_task = asyncio.get_running_loop().create_task(self.read_replies(slot, reader))
        return AppIndex.from_dict(frame[0]["ready"])

    async def read_replies(self, slot: Slot, reader: asyncio.StreamReader) -> None:
        try:
            while (frame := await wire.read(reader)) is not None:
                header, body = frame
                future = slot.outstanding.pop(header["id"], None)
                if future is None or future.done():
                    continue
                if "error" in header:
                    future.set_exception(FunctionFailed(header["error"]))
                else:
                    future.set_result((header, body))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        await self.lost(slot)

    async def lost(self, slot: Slot) -> None:
        process, slot.process, slot.writer = slot.process, None, None
        slot.outbox.clear()  # their invocations fail below
        code = None
        if process is not None:
            try:
                code = await asyncio.to_thread(process.wait, STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:  # its socket is closed yet it runs on: it can do nothing useful
                process.kill()
                code = await asyncio.to_thread(process.wait)
        outstanding, slot.outstanding = slot.outstanding, {}
        for future in outstanding.values():
            if not future.done():
                future.set_exception(WorkerExited(f"the language worker exited (code {code}) while running this"))
        if self.stopping:
            return
        log.error("language worker %d exited with code %s; starting a new one", slot.number, code)
        try:
            await self.spawn(slot)
        except AppLoadError as error:
            log.error("the replacement worker cannot load the app: %s", error)

    def invoke(
        self, info: FunctionInfo, body: bytes = b"", affinity: str | None = None, **fields: Any
    ) -> asyncio.Future[Reply]:
        """Run `info` in a worker; the future holds the reply frame, or FunctionFailed / WorkerExited."""
        if affinity is not None:
            slot = self.slots[zlib.crc32(affinity.encode()) % len(self.slots)]
        else:
            slot = min(self.slots, key=lambda candidate: len(candidate.outstanding))
        request_id, self.next_id = self.next_id, self.next_id + 1
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        slot.outstanding[request_id] = future
        slot.send(wire.encode({"id": request_id, "function": info.name, **fields}, body))
        return future

    def restart_holder(self, future: asyncio.Future[Reply]) -> None:
        """Restart the worker running the invocation behind `future`, as the Functions host restarts an
        out-of-process worker after a function timeout (what else that worker runs fails with WorkerExited)."""
        future.add_done_callback(lambda done: done.cancelled() or done.exception())  # nobody awaits it now
        for slot in self.slots:
            if any(pending is future for pending in slot.outstanding.values()) and slot.process is not None:
                log.error("a function timed out in language worker %d; restarting it", slot.number)
                slot.process.kill()
                return

    async def stop(self) -> None:
        """Close every worker's socket (they exit on it) and wait for them, then kill what remains."""
        self.stopping = True
        for slot in self.slots:
            if slot.writer is not None:
                slot.writer.close()
        for slot in self.slots:
            if slot.reader_task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await slot.reader_task
            elif slot.process is not None:
                slot.process.kill()
                slot.process.wait()


def worker_count(environ: dict[str, str] | os._Environ[str] | None = None) -> int:
    """`FUNCTIONS_WORKER_PROCESS_COUNT`, as in Azure (1 to 10); devhost defaults to 1."""
    values = os.environ if environ is None else environ
    text = values.get("FUNCTIONS_WORKER_PROCESS_COUNT", "").strip()
    if not text:
        return 1
    try:
        count = int(text)
    except ValueError:
        raise AppLoadError(
            f"FUNCTIONS_WORKER_PROCESS_COUNT must be a whole number from 1 to 10, not {text!r}"
        ) from None
    if not 1 <= count <= 10:
        raise AppLoadError(f"FUNCTIONS_WORKER_PROCESS_COUNT must be from 1 to 10, not {count}")
    return count
