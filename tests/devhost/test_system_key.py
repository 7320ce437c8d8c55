"""The Durable HTTP API needs the extension's system key, as on the Functions host; the app keeps working.

Real devhost processes on loopback: a caller without the key (any local process, a tenant's container) gets 401
on status, raise event and terminate; with it (header or `?code=`), the same calls work; the app's own Durable
client (the SDK, through the binding's RPC address) and the management URLs it hands out work unchanged.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devhost import systemkey
from devhost.launcher import DevhostProcess
from tests.httpserve import call_json as call

pytestmark = pytest.mark.e2e
APPS = Path(__file__).parent / "apps"
TCP_LISTEN = "0A"  # the LISTEN state in /proc/net/tcp


def start(data: Path, env: dict[str, str] | None = None) -> DevhostProcess:
    settings = {"FEATURES_MARK_DIR": str(data.parent), "TICK_SCHEDULE": "0 0 0 1 1 *", **(env or {})}
    return DevhostProcess(APPS / "features", data, env=settings, log_path=data.parent / "devhost.log")


def listening_ports(pid: int) -> set[int]:
    """The TCP ports a process listens on, from its socket inodes and /proc/net/tcp."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except FileNotFoundError:  # closed between the listing and the read (a request's socket)
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    ports = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == TCP_LISTEN and fields[9] in inodes:
            ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevhostProcess]:
    with start(tmp_path_factory.mktemp("system-key") / "data") as process:
        yield process


def started(host: DevhostProcess, instance: str) -> dict[str, Any]:
    """Start `waits` through the app (its SDK client): the check-status payload the app answers with."""
    status, payload = call(f"{host.url}/api/start/waits/{instance}", "POST")
    assert status == 202, payload
    return dict(payload)


def test_without_the_key_status_raise_and_terminate_are_refused(host: DevhostProcess) -> None:
    started(host, "locked-1")
    durable = f"{host.durable_url}/instances/locked-1"
    wrong = {"x-functions-key": "not-the-key"}
    for headers in ({}, wrong):
        assert call(durable, headers=headers) == (401, None)
        assert call(f"{durable}/raiseEvent/Early", "POST", 1, headers=headers) == (401, None)
        assert call(f"{durable}/terminate?reason=pwn", "POST", headers=headers) == (401, None)
        assert call(f"{host.durable_url}/instances/", headers=headers) == (401, None)
        assert call(f"{host.durable_url}/orchestrators/waits/other", "POST", headers=headers) == (401, None)
    # The header wins over the query parameter, as on the host: a right `code` does not rescue a wrong header.
    assert call(f"{durable}?code={host.system_key}", headers=wrong) == (401, None)
    # The host serves no `/durabletask/` route on its public port.
    assert call(f"{host.url}/durabletask/instances/locked-1")[0] == 404
    # Nothing happened to the instance.
    key = {"x-functions-key": host.system_key}
    assert call(durable, headers=key)[1]["runtimeStatus"] == "Running"


def test_the_rpc_listener_refuses_callers_without_the_key(host: DevhostProcess) -> None:
    assert host.process is not None
    rpc_ports = listening_ports(host.process.pid) - {host.port}
    assert len(rpc_ports) == 1, rpc_ports
    rpc = f"http://127.0.0.1:{rpc_ports.pop()}"
    started(host, "locked-rpc")
    assert call(f"{rpc}/durabletask/instances/locked-rpc")[0] == 401
    assert call(f"{rpc}/durabletask/instances/locked-rpc/terminate", "POST")[0] == 401
    assert call(f"{rpc}/not-the-key/durabletask/instances/locked-rpc/terminate", "POST")[0] == 401
    assert call(f"{rpc}/{host.system_key}/durabletask/instances/locked-rpc")[1]["runtimeStatus"] == "Running"


def test_with_the_key_status_raise_and_terminate_work(host: DevhostProcess) -> None:
    started(host, "open-1")
    durable = f"{host.durable_url}/instances/open-1"
    key = {"x-functions-key": host.system_key}
    assert call(durable, headers=key)[1]["runtimeStatus"] == "Running"
    assert call(f"{durable}/raiseEvent/Early", "POST", {"n": 1}, headers=key)[0] == 202
    assert call(f"{durable}/terminate?reason=done&code={host.system_key}", "POST")[0] == 202  # as a query param
    deadline = time.monotonic() + 20
    while (current := call(durable, headers=key)[1])["runtimeStatus"] != "Terminated":
        assert time.monotonic() < deadline, current
        time.sleep(0.05)
    history = call(f"{durable}?showHistory=true", headers=key)[1]["historyEvents"]
    assert any(event.get("Name") == "Early" for event in history)


def test_the_app_and_its_management_urls_keep_working(host: DevhostProcess) -> None:
    payload = started(host, "through-app")  # the SDK client started it through the binding's RPC address
    assert f"code={host.system_key}" in payload["statusQueryGetUri"]
    assert call(f"{host.url}/api/raise/through-app/Early", "POST", 1)[0] == 202  # the SDK's raise_event
    send = payload["sendEventPostUri"].replace("{eventName}", "Approval")
    assert call(send, "POST", "yes")[0] == 202  # the management URL as handed out, with no other credential
    deadline = time.monotonic() + 20
    while (status := call(payload["statusQueryGetUri"]))[1]["runtimeStatus"] != "Completed":
        assert time.monotonic() < deadline, status
        time.sleep(0.05)
    assert status == (200, status[1]) and status[1]["output"]["approval"] == "yes"
    assert call(f"{host.url}/api/manage/terminate/through-app", "POST")[0] == 202  # the SDK's terminate: 410 is OK


def test_the_key_is_private_kept_across_restarts_and_overridable(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with start(data) as first:
        key = first.system_key
        mode = stat.S_IMODE(os.stat(systemkey.key_file(data)).st_mode)
        assert mode == 0o600, oct(mode)
        started(first, "kept")
    with start(data) as second:
        assert second.system_key == key
        assert call(f"{second.durable_url}/instances/kept", headers={"x-functions-key": key})[0] == 202
    with start(data, {systemkey.SETTING: "fixed-key-from-settings"}) as third:
        assert third.system_key == "fixed-key-from-settings"
        assert call(f"{third.durable_url}/instances/kept", headers={"x-functions-key": key})[0] == 401
        assert call(f"{third.durable_url}/instances/kept?code=fixed-key-from-settings")[0] == 202
    assert systemkey.read(data, {}) == key  # the override did not replace the stored key
