"""Streaming a growing log file on the shared volume into an append blob, whole.

The blob outlives the volume: when ACI restarts the group in place its `emptyDir` may come back empty, and the new
run's log file starts again at byte 0 while the blob already holds the earlier run's bytes. So the stream keeps
two offsets apart: the blob's length (where the next append goes) and `base`, the number of blob bytes that came
before this volume's log file (the file's byte k is the blob's byte base + k). `base` is recorded in state/ when
the stream starts on a volume that has none, so a sidecar restarted on the same volume carries on where it was.
"""

from __future__ import annotations

import contextlib
import os

from . import storage
from .layout import open_inside, read_small, redact, write_new

# An append blob takes at most 50,000 blocks, so the interval between appends grows with the count: about a
# second while a task is young, and a block a minute for one that has logged for many hours.
INTERVALS = ((3_600, 1.0), (20_000, 10.0), (50_000, 60.0))
# Written between the bytes of an earlier run and those of the run on the fresh volume.
RESTART_NOTE = b"[acibatch] the container group restarted; the command's output on its new volume follows\n"


class LogStream:
    def __init__(self, path: str, url: str, root: str, base_path: str) -> None:
        self.path, self.url, self.root, self.base_path = path, url, root, base_path
        self.what = f"appending to {redact(url)}"
        self.offset = 0  # the blob's length as far as this stream knows: where the next append goes
        self.base = 0  # blob bytes before this volume's log file
        self.blocks = 0
        self.started = False

    def start(self) -> None:
        """Create the append blob, or carry on where it ends: after a restart of the sidecar on the same volume
        from the recorded base, on a fresh volume (no base recorded) after what the blob already holds."""
        found = storage.blob_size(self.url, self.what)
        if found is None:
            storage.put_blob(self.url, b"", f"creating {redact(self.url)}", blob_type="AppendBlob")
            found = (0, 0)
        self.offset, self.blocks = found
        recorded = self._recorded_base()
        if recorded is not None and recorded <= self.offset:
            self.base = recorded
        else:
            if self.offset > 0:
                self._note_restart()
            self.base = self.offset
            self._record_base()
        self.started = True

    def _recorded_base(self) -> int | None:
        text = read_small(self.base_path, 32)
        try:
            return int(text.decode()) if text is not None else None
        except ValueError:
            return None  # not ours (the user's container can write state/): start afresh

    def _record_base(self) -> None:
        # No state/ (stage-in failed early) leaves it unrecorded: only a later restart of this sidecar needs it.
        with contextlib.suppress(OSError):
            write_new(self.base_path, f"{self.base}\n".encode())

    def _note_restart(self) -> None:
        note = RESTART_NOTE if self._ends_with_newline() else b"\n" + RESTART_NOTE
        self._append(note)

    def _ends_with_newline(self) -> bool:
        try:
            return storage.last_byte(self.url, self.offset, self.what) == b"\n"
        except storage.StorageError:
            return False

    def _append(self, data: bytes) -> bool:
        """Append at the blob's end as known; False when an earlier try had landed (the offset is then re-read)."""
        try:
            storage.append_block(self.url, data, self.offset, self.what)
        except storage.StorageError as error:
            if error.status != 412:
                raise
            # An earlier try of this append did land: resume at the blob's real end.
            self.offset, self.blocks = storage.blob_size(self.url, self.what) or (0, 0)
            return False
        self.offset += len(data)
        self.blocks += 1
        return True

    def interval(self) -> float:
        for limit, seconds in INTERVALS:
            if self.blocks < limit:
                return seconds
        return INTERVALS[-1][1]

    def pump(self) -> int:
        """Append what the file held when called, in blocks of at most 4 MiB; the bytes appended. (What the
        command writes meanwhile waits for the next call, so one busy stream cannot hold up the other.)"""
        if not self.started:
            self.start()  # it failed at first (a network blip): appending needs the blob and its length
        if not os.path.isfile(self.path):
            return 0
        sent = 0
        # The user's command can write the logs directory: never read through a link it planted out of the volume.
        with open_inside(self.path, self.root) as handle:
            end = os.fstat(handle.fileno()).st_size
            while self.offset - self.base < end:
                handle.seek(self.offset - self.base)
                data = handle.read(min(storage.MAX_BLOCK, end - (self.offset - self.base)))
                if not data:
                    break
                if self._append(data):
                    sent += len(data)
        return sent
