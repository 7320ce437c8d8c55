"""Folders the emulator is done with: moved aside at once, deleted by a background thread.

A deleted group's logs and container files, and a restarted container's old home and /tmp, are many small
files. Deleting them on the event loop stalled every other request and container start behind the file system
(a busy disk's journal makes each unlink wait), which ACI, where one group's delete never holds up another's
start, does not do. So the folder is renamed into `<data>/trash` first (one rename: the path is free for a new
group or run of the same name at once) and a thread deletes the trash. The thread is started when there is
something to delete and ends after `idle_seconds` without work, so a store that deletes nothing has none. Whatever
a crash left in the trash is deleted on the next start.
"""

from __future__ import annotations

import queue
import shutil
import threading
import uuid
from pathlib import Path

FOLDER = "trash"
IDLE_SECONDS = 5.0  # a deleting thread ends after this long without work (the next discard starts another)


class Trash:
    def __init__(self, data_dir: Path, idle_seconds: float = IDLE_SECONDS) -> None:
        self.root = data_dir / FOLDER
        self.root.mkdir(parents=True, exist_ok=True)
        self.idle_seconds = idle_seconds
        self.pending: queue.Queue[Path] = queue.Queue()
        self.thread: threading.Thread | None = None
        self.lock = threading.Lock()  # held for every put and for the thread's decision to end
        for leftover in self.root.iterdir():  # a crash between a rename and its delete
            self.delete_later(leftover)

    def move_aside(self, path: Path) -> Path | None:
        """Take `path` (a folder, or nothing) out of its place now; where it went (in the trash), or None.

        Trash names are random (uuid4), never those of an earlier run's leftovers still waiting to be deleted:
        renaming onto one would fail, or replace it when empty."""
        target = self.root / uuid.uuid4().hex
        try:
            path.rename(target)
        except FileNotFoundError:
            return None
        except OSError:  # cannot be moved (not expected within one data folder): delete it in place, now
            shutil.rmtree(path, ignore_errors=True)
            return None
        return target

    def discard(self, path: Path) -> None:
        """Take `path` (a folder, or nothing) out of its place now; delete it soon, off the caller's thread."""
        if (moved := self.move_aside(path)) is not None:
            self.delete_later(moved)

    def delete_later(self, path: Path) -> None:
        with self.lock:
            self.pending.put(path)
            if self.thread is None:
                # A daemon thread: an emulator stopping mid-delete leaves the rest for its next start.
                self.thread = threading.Thread(target=self._delete, name="aciemu-trash", daemon=True)
                self.thread.start()

    def wait_empty(self) -> None:
        """Until everything discarded so far is deleted (tests, and anything that counts files)."""
        self.pending.join()

    def _delete(self) -> None:
        while True:
            try:
                path = self.pending.get(timeout=self.idle_seconds)
            except queue.Empty:
                with self.lock:  # every put holds the lock: nothing can arrive between this check and the end
                    if self.pending.empty():
                        self.thread = None
                        return
                continue
            try:
                shutil.rmtree(path, ignore_errors=True)
            finally:
                self.pending.task_done()
