"""Uploading the task's output files to blob storage, with their size and sha256."""

from __future__ import annotations

import hashlib
import os
from typing import Any

from . import globbing, storage
from .layout import open_inside, redact

# Files up to this size go in one Put Blob; bigger ones in blocks committed at the end by Put Block List, so a
# blob never exists half-written.
SINGLE_PUT_LIMIT = storage.MAX_BLOCK


class UploadError(Exception):
    def __init__(self, file: str, message: str) -> None:
        super().__init__(message)
        self.file = file


def wanted(condition: str, exit_code: int | None) -> bool:
    """Batch's uploadCondition; a task that never ran to an exit code counts as failed."""
    succeeded = exit_code == 0
    if condition == "taskSuccess":
        return succeeded
    if condition == "taskFailure":
        return not succeeded
    return True


def upload_file(path: str, wd: str, url: str, what: str) -> tuple[int, str]:
    """Upload the file; its size and sha256."""
    digest = hashlib.sha256()
    with open_inside(path, wd) as handle:
        size = os.fstat(handle.fileno()).st_size
        if size <= SINGLE_PUT_LIMIT:
            data = handle.read()
            digest.update(data)
            storage.put_blob(url, data, what)
            return len(data), digest.hexdigest()
        ids: list[str] = []
        total = 0
        while data := handle.read(storage.MAX_BLOCK):
            block = storage.block_id(len(ids))
            storage.put_block(url, block, data, what)
            digest.update(data)
            ids.append(block)
            total += len(data)
        storage.put_block_list(url, ids, what)
    return total, digest.hexdigest()


Uploaded = list[dict[str, Any]]


def upload_outputs(
    wd: str, outputs: list[dict[str, Any]], exit_code: int | None
) -> tuple[Uploaded, UploadError | None]:
    """Upload every output whose condition holds, in manifest order; stop at the first failure. The files
    uploaded whole, and the failure (None when all went up)."""
    done: Uploaded = []
    for spec in outputs:
        if not wanted(spec.get("uploadCondition") or "taskCompletion", exit_code):
            continue
        pattern, container = spec["filePattern"], spec["containerUrl"]
        for file in globbing.find(wd, pattern):
            full = os.path.join(wd, *file.split("/"))
            name = globbing.blob_name(pattern, spec.get("path") or "", file)
            unsafe = globbing.unsafe_blob_name(name)
            if unsafe is not None:
                return done, UploadError(
                    file, f"'{file}' cannot be uploaded as blob '{name}': it has {unsafe}; rename the file"
                )
            what = f"uploading {file!r} to {redact(container)}/{name}"
            try:
                size, sha256 = upload_file(full, wd, storage.blob_url(container, name), what)
            except storage.StorageError as error:
                return done, UploadError(file, str(error))
            except PermissionError:
                return done, UploadError(file, f"{file!r} leads outside the task's working directory")
            except OSError as error:
                return done, UploadError(file, f"reading {file!r}: {error.strerror}")
            done.append(
                {
                    "name": name,
                    "file": file,
                    "size": size,
                    "sha256": sha256,
                    "destination": spec.get("destination") or "default",
                    "container": redact(container),
                }
            )
    return done, None
