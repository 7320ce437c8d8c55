"""A group's delete against what happens meanwhile, in-process with real processes (no bubblewrap): a start that
was preparing the group's folders, and a group of the same name created while the old one's processes stop. A
delete takes the group's file and folders at once, and nothing of it touches what comes after."""

from __future__ import annotations

import asyncio
import shutil
import threading
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aciemu import sandbox
from aciemu.arm import ArmFailure
from aciemu.client import SUBSCRIPTION
from aciemu.emulator import Emulator
from aciemu.groupstate import Group, Timings
from aciemu.store import GroupStore, group_key
from aciemu.trash import FOLDER

RG = "rg-delete"


def body(*command: str) -> dict[str, Any]:
    container = {
        "name": "main",
        "properties": {
            "image": "python:3",
            "command": list(command),
            "resources": {"requests": {"cpu": 0.5, "memoryInGB": 0.5}},
        },
    }
    return {"location": "westeurope", "properties": {"containers": [container], "osType": "Linux",
                                                     "restartPolicy": "Never"}}  # fmt: skip


async def until(check: Callable[[], Any], what: str, timeout: float = 15) -> None:
    for _ in range(int(timeout / 0.01)):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never: {what}")


def running(group: Group) -> bool:
    run = group.containers.get("main")
    return run is not None and run.current.get("state") == "Running"


async def settled(emulator: Emulator) -> None:
    await asyncio.sleep(0.3)  # anything a thread still had to do about the deleted group
    emulator.store.trash.wait_empty()


async def test_a_group_deleted_while_its_start_prepares_folders_leaves_none_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An earlier run's home on a busy disk: removing it takes a while. Wherever a start removes it, the delete
    # may come meanwhile; afterwards nothing may make the deleted group's folders again.
    entered, gate = threading.Event(), threading.Event()

    def slow_rmtree(path: Path, **options: Any) -> None:
        entered.set()
        gate.wait(5)
        shutil.rmtree(path, **options)

    monkeypatch.setattr(sandbox, "shutil", types.SimpleNamespace(rmtree=slow_rmtree, which=shutil.which))
    emulator = Emulator(tmp_path, use_bwrap=False, timings=Timings(provisioning_seconds=0.02))
    try:
        group = (await emulator.put(SUBSCRIPTION, RG, "g", body("sleep", "30"))).group
        await until(lambda: entered.is_set() or running(group), "the container's start")
        await emulator.delete_group(group)
        gate.set()
        await settled(emulator)
        assert not emulator.store.work_dir(group).exists()
        assert list((tmp_path / "work").iterdir()) == [] and list((tmp_path / FOLDER).iterdir()) == []
    finally:
        gate.set()
        await emulator.shutdown()


async def test_a_group_of_the_same_name_created_while_the_old_one_stops_is_left_alone(tmp_path: Path) -> None:
    emulator = Emulator(tmp_path, use_bwrap=False, timings=Timings(provisioning_seconds=0.02, stop_grace_seconds=1.5))
    key = group_key(SUBSCRIPTION, RG, "g")
    try:
        # The old group's process ignores SIGTERM, so its delete waits the whole stop grace.
        old = (await emulator.put(SUBSCRIPTION, RG, "g", body("sh", "-c", "trap '' TERM; touch ready; sleep 30"))).group
        ready = emulator.store.work_dir(old) / "main" / "home" / "ready"
        await until(lambda: running(old) and ready.exists(), "the old container, ignoring SIGTERM")
        deleting = asyncio.create_task(emulator.delete_group(old))
        await asyncio.sleep(0.2)
        assert not deleting.done()
        # Gone before the DELETE is answered: reads say 404, and a restart now would not bring it back.
        with pytest.raises(ArmFailure):
            emulator.get(SUBSCRIPTION, RG, "g")
        assert list((tmp_path / "groups").glob("*.json")) == []
        assert not emulator.store.work_dir(old).exists()

        new = (await emulator.put(SUBSCRIPTION, RG, "g", body("sleep", "30"))).group
        await until(lambda: running(new), "the new container")
        (emulator.store.work_dir(new) / "main" / "home" / "mine").write_text("kept")
        await deleting
        await settled(emulator)

        assert emulator.store.get(key) is new
        assert (emulator.store.work_dir(new) / "main" / "home" / "mine").read_text() == "kept"
        assert (emulator.store.log_dir(new) / "main.log").exists()
        assert [group.key for group in GroupStore(tmp_path).read_all()] == [key]  # what a restart would start
        assert list((tmp_path / FOLDER).iterdir()) == []  # the old group's folders, deleted once it stopped
    finally:
        await emulator.shutdown()
