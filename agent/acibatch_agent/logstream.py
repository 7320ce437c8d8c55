"""Streaming a growing log file on the shared volume into an append blob, whole."""

from __future__ import annotations

import os

from . import storage
from .layout import open_inside, redact

# An append blob takes at most 50,000 blocks, so the interval between appends grows with the count: about a
# second while a task is young, and a block a minute for one that has logged for many hours.
INTERVALS = ((3_600, 1.0), (20_000, 10.0), (50_000, 60.0))


class LogStream:
    def __init__(self, path: str, url: str, base: str) -> None:
        self.path, self.url, self.base = path, url, base
        self.what = f"appending to {redact(url)}"
        self.offset = 0
        self.blocks = 0
        self.started = False

    def start(self) -> None:
        """Create the append blob, or after a restart of the sidecar carry on where the blob ends."""
        found = storage.blob_size(self.url, self.what)
        if found is None:
            storage.put_blob(self.url, b"", f"creating {redact(self.url)}", blob_type="AppendBlob")
            found = (0, 0)
        self.offset, self.blocks = found
        self.started = True

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
        with open_inside(self.path, self.base) as handle:
            end = os.fstat(handle.fileno()).st_size
            while self.offset < end:
                handle.seek(self.offset)
                data = handle.read(min(storage.MAX_BLOCK, end - self.offset))
                if not data:
                    break
                try:
                    storage.append_block(self.url, data, self.offset, self.what)
                except storage.StorageError as error:
                    if error.status != 412:
                        raise
                    # An earlier try of this append did land: resume at the blob's real end.
                    self.offset, self.blocks = storage.blob_size(self.url, self.what) or (0, 0)
                    continue
                self.offset += len(data)
                self.blocks += 1
                sent += len(data)
        return sent
