"""The group store: every container group by key, kept as one private JSON file each under `--data/groups`, and
the per-group folders for logs and container files.

Files are named by the key in URL-safe base64, so any ARM name (case, dots, parentheses) maps to one file name.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

from aciemu.groupstate import Group, write_private_file
from aciemu.trash import Trash
from localtools import fastjson

FOLDERS = ("groups", "logs", "work")


def group_key(subscription: str, resource_group: str, name: str) -> str:
    """ARM names are case-insensitive: one key for every spelling."""
    return f"{subscription}/{resource_group}/{name}".lower()


class GroupStore:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.groups: dict[str, Group] = {}
        self.saved: dict[str, bytes] = {}  # what each group's file holds
        for folder in FOLDERS:
            (data_dir / folder).mkdir(parents=True, exist_ok=True)
        self.trash = Trash(data_dir)

    def _stem(self, key: str) -> str:
        return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")

    def _file(self, key: str) -> Path:
        return self.data_dir / "groups" / f"{self._stem(key)}.json"

    def __contains__(self, key: object) -> bool:
        return key in self.groups

    def __len__(self) -> int:
        return len(self.groups)

    def __iter__(self) -> Iterator[Group]:
        return iter(list(self.groups.values()))

    def get(self, key: str) -> Group | None:
        return self.groups.get(key)

    def with_prefix(self, prefix: str) -> list[Group]:
        """The groups whose key starts with `prefix` (`sub/` for a subscription, `sub/rg/` for a resource group)."""
        prefix = prefix.lower()
        return [group for key, group in self.groups.items() if key.startswith(prefix)]

    def put(self, group: Group) -> None:
        self.groups[group.key] = group
        self.save(group)

    def save(self, group: Group) -> None:
        """Write the group's file, unless the group has been removed (a runtime finishing after a delete)."""
        if group.key not in self.groups:
            return
        data = fastjson.dumps(group.to_dict())
        # A group's runtime saves after each step, and some steps change nothing (the end of a run saves what
        # its last container's exit saved): skip rewriting a file that would not change.
        if self.saved.get(group.key) != data:
            write_private_file(self._file(group.key), data)
            self.saved[group.key] = data

    def forget(self, group: Group) -> None:
        """Drop the group from the store at once (reads answer 404 from now on); its files stay until `erase`."""
        self.groups.pop(group.key, None)
        self.saved.pop(group.key, None)

    def erase(self, group: Group) -> list[Path]:
        """Delete a forgotten group's file and move its logs and container folders into the trash, all at once:
        a restart never brings the group back, and a new group of the same name starts clean. Returns where the
        folders went; the caller has them deleted (`trash.delete_later`) once the group's processes are gone."""
        with contextlib.suppress(FileNotFoundError):
            self._file(group.key).unlink()
        moved = (self.trash.move_aside(self.data_dir / "logs" / self._stem(group.key)),
                 self.trash.move_aside(self.work_dir(group)))  # fmt: skip
        return [folder for folder in moved if folder is not None]

    def read_all(self) -> list[Group]:
        """Load every stored group (after an emulator restart), in file name order."""
        for path in sorted((self.data_dir / "groups").glob("*.json")):
            group = Group.from_dict(json.loads(path.read_text()))
            self.groups[group.key] = group
        return list(self.groups.values())

    def log_dir(self, group: Group) -> Path:
        path = self.data_dir / "logs" / self._stem(group.key)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def work_dir(self, group: Group) -> Path:
        return self.data_dir / "work" / self._stem(group.key)
