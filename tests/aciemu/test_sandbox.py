"""aciemu's sandbox: how it applies a container's limits, and what a container can read of other tenants."""

from __future__ import annotations

import secrets
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.containerinstance import ContainerInstanceManagementClient
from azure.mgmt.containerinstance.models import (
    Container,
    ContainerGroup,
    EnvironmentVariable,
    ResourceRequests,
    ResourceRequirements,
)

from aciemu import sandbox
from aciemu.client import emulator_client
from aciemu.images import ImageCatalogInvalid, ImageEntry, load_catalog, lookup, parse_catalog
from aciemu.launcher import AciEmulatorProcess
from aciemu.sandbox import bwrap_path

REPO_ROOT = Path(__file__).resolve().parents[2]
RG = "rg-sandbox"


def test_prlimit_wraps_the_command_so_no_preexec_hook_is_needed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: "/usr/bin/prlimit" if name == "prlimit" else None)
    argv, preexec = sandbox.limited_argv(["sleep", "1"], memory_gb=4)
    assert argv == ["/usr/bin/prlimit", f"--as={8 * sandbox.GIB}", "--core=0", "--", "sleep", "1"]
    assert preexec is None


def test_without_prlimit_the_limits_are_set_in_the_child(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    argv, preexec = sandbox.limited_argv(["sleep", "1"], memory_gb=0.5)
    assert argv == ["sleep", "1"] and preexec is not None


def test_the_proc_sweep_is_skipped_under_bubblewrap(monkeypatch: pytest.MonkeyPatch) -> None:
    scanned: list[str] = []
    monkeypatch.setattr(sandbox, "marked_pids", lambda marker: scanned.append(marker) or [])
    sandbox.kill_marked("m1", use_bwrap=True)
    sandbox.kill_marked("m2", use_bwrap=False)
    assert scanned == ["m2"]


# -- what a container can read --------------------------------------------------------------------------------

# The thief reads every file it is given or can find (outside the system directories, which hold no tenant
# data), and every visible process's environment and command line, and saves all of it in its own home.
THIEF = r"""
import os, sys
SKIP = {"/usr", "/proc", "/sys", "/dev", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"}
loot, seen = [], []
def grab(path):
    try:
        with open(path, "rb") as handle:
            loot.append(handle.read(1 << 20))
            seen.append(path)
    except OSError:
        pass
def sweep(top, skip=()):
    if os.path.isfile(top):
        return grab(top)
    for folder, dirs, files in os.walk(top):
        dirs[:] = [d for d in dirs if os.path.join(folder, d) not in skip]
        for name in files:
            grab(os.path.join(folder, name))
for target in sys.argv[2:]:
    sweep(target)
if sys.argv[1] == "walk":
    sweep("/", SKIP)
for pid in os.listdir("/proc"):
    if pid.isdigit():
        grab(f"/proc/{pid}/environ")
        grab(f"/proc/{pid}/cmdline")
with open(os.path.join(os.environ["HOME"], "loot.bin"), "wb") as out:
    out.write(b"\n".join(loot))
print(f"read {len(seen)} files", flush=True)
"""
# Tenant B keeps its secret in a secure env var, in its home and in its /tmp, and stays running.
VICTIM = 'echo "$SECRET_B" > "$HOME/notes"; echo "$SECRET_B" > "${TMPDIR:-/tmp}/notes-b"; echo ready; sleep 120'


def container(name: str, command: list[str], secure: dict[str, str], image: str = "python:3") -> ContainerGroup:
    spec = Container(
        name="main", image=image, command=command,
        environment_variables=[EnvironmentVariable(name=k, secure_value=v) for k, v in secure.items()],
        resources=ResourceRequirements(requests=ResourceRequests(cpu=0.5, memory_in_gb=0.5)),
    )  # fmt: skip
    return ContainerGroup(location="westeurope", containers=[spec], os_type="Linux", restart_policy="Never")


def wait_for(check: Callable[[], Any], timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)
    return value


def logs(client: ContainerInstanceManagementClient, name: str) -> str:
    try:
        return str(client.containers.list_logs(RG, name, "main").content or "")
    except HttpResponseError:
        return ""


def steal(tmp_path: Path, isolated: bool) -> tuple[bytes, str, dict[str, str]]:
    """Run tenant B's secret-holding group, then tenant A's thief; answer what the thief collected."""
    secrets_b = {"secure": secrets.token_hex(16), "devhost": secrets.token_hex(16)}
    state = tmp_path / "aciemu"
    devhost = tmp_path / "devhost"
    devhost.mkdir()
    with sqlite3.connect(devhost / "devhost.sqlite") as db:  # stands in for devhost's store next to aciemu's
        db.execute("create table history (payload text)")
        db.execute("insert into history values (?)", (secrets_b["devhost"],))
    args = [] if isolated else ["--no-bwrap"]
    with AciEmulatorProcess(state, args=args, log_path=tmp_path / "aciemu.log") as emulator:
        client = emulator_client(emulator.url, emulator.token)
        client.container_groups.begin_create_or_update(
            RG, "tenant-b", container("victim", ["sh", "-c", VICTIM], {"SECRET_B": secrets_b["secure"]})
        ).result()
        wait_for(lambda: "ready" in logs(client, "tenant-b"))
        targets = [str(state), str(devhost)]
        if isolated:  # unisolated, reading the checkout, $HOME or the whole host would take minutes
            targets += [str(REPO_ROOT), str(Path.home()), "/tmp"]
        walk = "walk" if isolated else "targets"
        thief = ["python3", "-c", THIEF, walk, *targets]
        client.container_groups.begin_create_or_update(RG, "tenant-a", container("thief", thief, {})).result()
        said = wait_for(lambda: (text := logs(client, "tenant-a")) and "read " in text and text)
        homes = list((state / "work").glob("*/main/home/loot.bin"))
        assert len(homes) == 1, homes
        loot = homes[0].read_bytes()
    return loot, said, secrets_b


@pytest.mark.bwrap
def test_a_container_reads_none_of_another_tenants_secrets(tmp_path: Path) -> None:
    if bwrap_path() is None:
        pytest.skip("bubblewrap is not installed (apt-get install bubblewrap)")
    loot, said, secrets_b = steal(tmp_path, isolated=True)
    read = int(said.split("read ", 1)[1].split()[0])
    assert read >= 5, said  # it did read: /etc files, its own environment and command line
    leaked = [name for name, value in secrets_b.items() if value.encode() in loot]
    assert leaked == [], f"the thief read tenant B's {leaked} secret"
    assert b"ACIEMU_PROCESS_MARKER" in loot  # its own /proc/<pid>/environ, so the /proc sweep itself worked


def test_without_bubblewrap_the_same_thief_succeeds_and_the_emulator_says_so(tmp_path: Path) -> None:
    loot, _, secrets_b = steal(tmp_path, isolated=False)
    assert secrets_b["secure"].encode() in loot and secrets_b["devhost"].encode() in loot  # the test has teeth
    assert "containers are NOT isolated" in (tmp_path / "aciemu.log").read_text()


# -- the image catalog ----------------------------------------------------------------------------------------


def test_a_catalog_maps_an_image_to_a_folder_relative_to_the_catalog(tmp_path: Path) -> None:
    (tmp_path / "worker").mkdir()
    (tmp_path / "images.json").write_text(
        '{"reg.io/worker:*": {"dir": "worker", "workdir": "/app", "command": ["python3", "task.py"]},'
        ' "busybox*": ["sh"]}'
    )
    catalog = load_catalog(tmp_path / "images.json")
    worker = lookup(catalog, "reg.io/worker:1")
    assert worker == ImageEntry(("python3", "task.py"), (tmp_path / "worker").resolve(), "/app")
    assert lookup(catalog, "busybox:1.36") == ImageEntry(("sh",))
    assert lookup(catalog, "reg.io/other:1") is None


@pytest.mark.parametrize(
    ("entry", "complaint"),
    [
        ({"dir": "worker"}, "go together"),
        ({"dir": "missing", "workdir": "/app"}, "is not a folder"),
        ({"dir": "worker", "workdir": "/"}, "would hide system files"),
        ({"dir": "worker", "workdir": "/usr/local/app"}, "would hide system files"),
        ({"dir": "worker", "workdir": "app"}, "absolute path"),
        ({"command": "python3 task.py"}, "non-empty list"),
        ({"cmd": ["sh"]}, "unknown keys"),
    ],
)
def test_a_bad_catalog_entry_is_refused_with_what_to_fix(tmp_path: Path, entry: dict[str, Any], complaint: str) -> None:
    (tmp_path / "worker").mkdir()
    with pytest.raises(ImageCatalogInvalid, match=complaint):
        parse_catalog({"img": entry}, tmp_path)


def test_a_restarted_container_starts_from_fresh_files(tmp_path: Path) -> None:
    """A container restart in ACI is a new container from the image: what the last run wrote is gone."""
    remember = 'test -e "$HOME/seen" && exit 0; touch "$HOME/seen" /tmp/seen; echo first run; exit 3'
    args = ["--restart-backoff-scale", "0.02"]
    with AciEmulatorProcess(tmp_path / "state", args=args, log_path=tmp_path / "aciemu.log") as emulator:
        client = emulator_client(emulator.url, emulator.token)
        spec = container("again", ["sh", "-c", remember], {})
        spec.restart_policy = "OnFailure"
        client.container_groups.begin_create_or_update(RG, "again", spec).result()

        # Every run finds no file of the run before: each says "first run" and fails again.
        wait_for(lambda: logs(client, "again").count("first run") >= 3)
        view = client.container_groups.get(RG, "again").containers[0].instance_view
        assert view.restart_count >= 2
        assert view.current_state.exit_code in {None, 3}  # running its next restart, or failed once more
