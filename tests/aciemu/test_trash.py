"""The emulator's trash on a real folder: a discarded folder leaves its place at once, is deleted off the caller's
thread (one that runs only while there is work), never takes a new folder of the same name with it, never meets
an earlier run's leftovers, and a crash's leftovers go on the next start."""

from __future__ import annotations

import os
import shutil
import threading
import types
from pathlib import Path
from typing import Any

import pytest

from aciemu import trash as trash_module
from aciemu.store import GroupStore
from aciemu.trash import FOLDER, Trash
from tests.aciemu.test_store import stored


def many_files(folder: Path, count: int = 50) -> None:
    (folder / "deep" / "er").mkdir(parents=True)
    for number in range(count):
        (folder / "deep" / "er" / f"f{number}").write_text("x")


def test_a_discarded_folder_is_gone_at_once_and_a_new_one_of_its_name_survives(tmp_path: Path) -> None:
    trash = Trash(tmp_path)
    home = tmp_path / "work" / "group" / "home"
    many_files(home)
    trash.discard(home)
    assert not home.exists()
    home.mkdir(parents=True)
    (home / "new").write_text("kept")
    trash.wait_empty()
    assert (home / "new").read_text() == "kept"
    assert list((tmp_path / FOLDER).iterdir()) == []


def test_discarding_nothing_is_nothing(tmp_path: Path) -> None:
    trash = Trash(tmp_path)
    trash.discard(tmp_path / "absent")
    trash.wait_empty()
    assert list((tmp_path / FOLDER).iterdir()) == []


def test_what_a_crash_left_in_the_trash_is_deleted_on_the_next_start(tmp_path: Path) -> None:
    many_files(tmp_path / FOLDER / "123-0")
    trash = Trash(tmp_path)
    trash.wait_empty()
    assert list((tmp_path / FOLDER).iterdir()) == []


def test_an_erased_group_frees_its_folders_at_once_and_they_are_deleted(tmp_path: Path) -> None:
    store = GroupStore(tmp_path)
    group = stored(store, "s", "rg", "g")
    (store.log_dir(group) / "main.log").write_text("output")
    many_files(store.work_dir(group) / "main" / "home")
    store.forget(group)
    moved = store.erase(group)
    assert not store.work_dir(group).exists() and list((tmp_path / "logs").iterdir()) == []
    assert sorted(moved) == sorted((tmp_path / FOLDER).iterdir())  # kept until the group's processes are gone
    for folder in moved:
        store.trash.delete_later(folder)
    store.trash.wait_empty()
    assert list((tmp_path / FOLDER).iterdir()) == []


def test_a_discard_never_meets_a_leftover_of_an_earlier_run_still_being_deleted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # In a container the emulator often gets the same process id on every start: an earlier run's leftover may
    # carry any name this run would think of, and its delete may still be going on.
    many_files(tmp_path / FOLDER / f"{os.getpid()}-0")
    gate = threading.Event()
    deleted_on: list[str] = []

    def gated_rmtree(path: Path, **options: Any) -> None:
        deleted_on.append(threading.current_thread().name)
        if threading.current_thread() is not threading.main_thread():
            gate.wait(5)
        shutil.rmtree(path, **options)

    monkeypatch.setattr(trash_module, "shutil", types.SimpleNamespace(rmtree=gated_rmtree))
    trash = Trash(tmp_path)
    home = tmp_path / "work" / "group" / "home"
    many_files(home)
    try:
        trash.discard(home)
        assert not home.exists()
        assert len(list((tmp_path / FOLDER).iterdir())) == 2  # moved aside beside the leftover, not onto it
        assert "MainThread" not in deleted_on  # nothing was deleted on the caller's thread
    finally:
        gate.set()
    trash.wait_empty()
    assert list((tmp_path / FOLDER).iterdir()) == []


def test_the_deleting_thread_runs_only_while_there_is_work(tmp_path: Path) -> None:
    assert GroupStore(tmp_path / "store").trash.thread is None  # nothing to delete: no thread
    trash = Trash(tmp_path, idle_seconds=0.05)
    for round_ in range(2):  # and after it ended, the next discard starts another
        folder = tmp_path / "work" / f"home{round_}"
        many_files(folder)
        trash.discard(folder)
        thread = trash.thread
        trash.wait_empty()
        if thread is not None:
            thread.join(5)
            assert not thread.is_alive()
        assert trash.thread is None
        assert list((tmp_path / FOLDER).iterdir()) == []
