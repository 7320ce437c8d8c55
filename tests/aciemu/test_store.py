"""The group store on a real folder: one private file per group, rewritten only when it changes, and a delete
that answers 404 at once but erases files only when told."""

from __future__ import annotations

import json
from pathlib import Path

from aciemu.groupstate import Group
from aciemu.store import GroupStore, group_key


def stored(store: GroupStore, subscription: str, resource_group: str, name: str) -> Group:
    key = group_key(subscription, resource_group, name)
    group = Group(key=key, subscription=subscription, resource_group=resource_group, name=name,
                  body={"location": "westeurope", "properties": {"containers": []}})  # fmt: skip
    store.put(group)
    return group


def test_a_save_that_changes_nothing_leaves_the_group_file_alone(tmp_path: Path) -> None:
    store = GroupStore(tmp_path)
    group = stored(store, "s", "rg", "g")
    path = next((tmp_path / "groups").glob("*.json"))
    assert path.stat().st_mode & 0o777 == 0o600  # it holds secure values
    written = path.stat().st_ino  # every write replaces the file, so a rewrite shows as a new inode
    store.save(group)
    assert path.stat().st_ino == written
    group.state = "Running"
    store.save(group)
    assert path.stat().st_ino != written
    assert Group.from_dict(json.loads(path.read_text())).state == "Running"


def test_keys_ignore_case_and_prefixes_select_a_subscription_or_resource_group(tmp_path: Path) -> None:
    store = GroupStore(tmp_path)
    first = stored(store, "Sub-A", "RG.1", "one")
    stored(store, "sub-a", "rg.2", "two")
    stored(store, "sub-b", "rg.1", "three")
    assert store.get(group_key("SUB-A", "rg.1", "ONE")) is first
    assert {g.name for g in store.with_prefix("sub-a/")} == {"one", "two"}
    assert {g.name for g in store.with_prefix("SUB-A/Rg.1/")} == {"one"}


def test_a_forgotten_group_is_gone_at_once_and_its_files_go_when_erased(tmp_path: Path) -> None:
    store = GroupStore(tmp_path)
    group = stored(store, "s", "rg", "g")
    (store.log_dir(group) / "main.log").write_text("output")
    store.work_dir(group).mkdir(parents=True)
    store.forget(group)
    assert group.key not in store and len(store) == 0
    store.save(group)  # a runtime finishing after the delete writes nothing back
    assert len(list((tmp_path / "groups").glob("*.json"))) == 1
    store.erase(group)
    assert list((tmp_path / "groups").glob("*.json")) == []
    assert list((tmp_path / "logs").iterdir()) == [] and list((tmp_path / "work").iterdir()) == []


def test_groups_are_read_back_after_a_restart(tmp_path: Path) -> None:
    store = GroupStore(tmp_path)
    running = stored(store, "s", "rg", "b")
    running.state = "Running"
    store.save(running)
    stored(store, "s", "rg", "a")
    again = GroupStore(tmp_path)
    assert sorted((g.name, g.state) for g in again.read_all()) == [("a", "Pending"), ("b", "Running")]
