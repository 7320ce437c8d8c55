"""The image catalog: what an image name means locally, since the emulator pulls nothing.

`--images FILE` is a JSON object from image patterns (globs, first match wins) to either a default command
(a list, for containers that give none) or an object:

    {"command": ["python3", "task.py"], "dir": "examples/worker", "workdir": "/app"}

`dir` (relative paths are relative to the catalog file) is a host directory that stands in for the image's
files: under bubblewrap it is mounted read-only at `workdir` (an absolute path, required with `dir`), which
becomes the container's working directory, as the image's WORKDIR would. Nothing else of the host is shown.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class ImageCatalogInvalid(ValueError):
    """The catalog file is malformed; the message names the entry and what to fix."""


@dataclass(frozen=True)
class ImageEntry:
    command: tuple[str, ...] | None = None
    dir: Path | None = None
    workdir: str | None = None


def _entry(pattern: str, value: Any, base: Path) -> ImageEntry:
    if isinstance(value, list):
        value = {"command": value}
    if not isinstance(value, dict):
        raise ImageCatalogInvalid(f"image {pattern!r}: give a command (list of strings) or an object")
    unknown = set(value) - {"command", "dir", "workdir"}
    if unknown:
        raise ImageCatalogInvalid(f"image {pattern!r}: unknown keys {sorted(unknown)} (command, dir, workdir)")
    command = value.get("command")
    if command is not None and (
        not isinstance(command, list) or not command or not all(isinstance(a, str) and a for a in command)
    ):
        raise ImageCatalogInvalid(f"image {pattern!r}: 'command' must be a non-empty list of non-empty strings")
    folder, workdir = value.get("dir"), value.get("workdir")
    if (folder is None) != (workdir is None):
        raise ImageCatalogInvalid(f"image {pattern!r}: 'dir' and 'workdir' go together")
    path = None
    if folder is not None:
        if not isinstance(folder, str) or not isinstance(workdir, str) or not workdir.startswith("/"):
            raise ImageCatalogInvalid(f"image {pattern!r}: 'dir' is a folder path, 'workdir' an absolute path")
        if workdir.rstrip("/") in {"", "/proc", "/dev", "/tmp", "/etc", "/usr"} or workdir.startswith("/usr/"):
            raise ImageCatalogInvalid(f"image {pattern!r}: 'workdir' {workdir!r} would hide system files")
        path = (base / folder).resolve()
        if not path.is_dir():
            raise ImageCatalogInvalid(f"image {pattern!r}: 'dir' {str(path)!r} is not a folder")
    return ImageEntry(tuple(command) if command else None, path, workdir)


def parse_catalog(data: Any, base: Path) -> dict[str, ImageEntry]:
    if not isinstance(data, Mapping):
        raise ImageCatalogInvalid("the image catalog must be a JSON object of image pattern -> entry")
    return {str(pattern): _entry(str(pattern), value, base) for pattern, value in data.items()}


def load_catalog(path: Path) -> dict[str, ImageEntry]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ImageCatalogInvalid(f"cannot read the image catalog {str(path)!r}: {error}") from None
    return parse_catalog(data, path.resolve().parent)


def lookup(catalog: Mapping[str, ImageEntry], image: str) -> ImageEntry | None:
    for pattern, entry in catalog.items():
        if fnmatch.fnmatchcase(image, pattern):
            return entry
    return None
