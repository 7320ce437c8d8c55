"""Azurite in the local stack: started with it, wired into devhost, reachable with azure-storage-blob (also through
a SAS), stopped with it, and never writing a request URL (so never a SAS) into its log or data."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.storage.blob import BlobServiceClient, ContainerClient, ContainerSasPermissions, generate_container_sas

from localdev.localstack import LOCAL_AGENT_IMAGE, ensure_port_free, local_stack, stack_settings
from localtools.azurite import (
    ACCOUNT_KEY,
    ACCOUNT_NAME,
    CUSTOM_ACCOUNTS_ENV,
    INSTALL_HINT,
    AzuriteMissing,
    AzuriteProcess,
    find_azurite,
)
from localtools.process import free_port
from tests.httpserve import send_json, serving_on_a_thread


def processes_with(*fragments: str) -> dict[int, dict[str, str]]:
    """Running processes whose command line holds every fragment: pid -> environment (as /proc shows them)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:  # gone meanwhile, or not ours to read
            continue
        words = [arg.decode(errors="replace") for arg in argv]
        if all(fragment in words for fragment in fragments):
            pairs = (item.decode(errors="replace").partition("=") for item in environ if item)
            found[int(entry.name)] = {name: value for name, _, value in pairs}
    return found


def files_holding(root: Path, needles: list[str]) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            hits += [f"{path}: {needle!r}" for needle in needles if needle.encode() in data]
    return hits


def container_sas(container: str) -> str:
    return generate_container_sas(
        ACCOUNT_NAME,
        container,
        account_key=ACCOUNT_KEY,
        permission=ContainerSasPermissions(read=True, write=True, create=True, list=True),
        expiry=datetime.now(UTC) + timedelta(minutes=10),
        protocol="https,http",  # Azurite serves plain http on loopback
    )


@pytest.fixture
def no_developer_storage(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A developer's shell that points at some other storage: the stack must not pick it up."""
    monkeypatch.setenv("BATCH_STORAGE_CONNECTION_STRING", "DefaultEndpointsProtocol=https;AccountName=theirs;Acc")
    monkeypatch.setenv("BATCH_STORAGE_ACCOUNT_URL", "https://theirs.blob.core.windows.net")
    monkeypatch.setenv(CUSTOM_ACCOUNTS_ENV, "theirs:dGhlaXJzLWtleQ==")
    yield


@pytest.mark.azurite
@pytest.mark.e2e
def test_the_stack_runs_azurite_wires_it_into_devhost_and_stops_it(tmp_path: Path, no_developer_storage: None) -> None:
    data = tmp_path / "stack"
    with local_stack(data, storage=True) as stack:
        assert stack.blob_endpoint is not None and stack.blob_endpoint.startswith("http://127.0.0.1:")
        port = urllib.parse.urlsplit(stack.blob_endpoint).port
        assert port is not None
        connection = stack.settings["BATCH_STORAGE_CONNECTION_STRING"]
        assert f"BlobEndpoint={stack.blob_endpoint};" in connection and f"AccountName={ACCOUNT_NAME};" in connection
        assert stack.settings["BATCH_STORAGE_ACCOUNT_URL"] == ""  # both set would be a configuration error
        assert stack.settings["BATCH_AGENT_IMAGE"] == LOCAL_AGENT_IMAGE

        # What devhost (and the app's workers it starts) really run with, read from the kernel.
        hosts = processes_with("devhost", str(data / "devhost"))
        assert hosts, "devhost is not running"
        for environment in hosts.values():
            assert environment["BATCH_STORAGE_CONNECTION_STRING"] == connection
            assert environment["BATCH_AGENT_IMAGE"] == LOCAL_AGENT_IMAGE
        emulators = processes_with(str(data / "azurite"))
        assert len(emulators) == 1, emulators
        (azurite_pid,) = emulators
        assert CUSTOM_ACCOUNTS_ENV not in emulators[azurite_pid]

        # The app's own code path: the SDK with the connection string devhost got.
        service = BlobServiceClient.from_connection_string(connection)
        service.create_container("acb-stacktest")
        service.get_blob_client("acb-stacktest", "inputs/set/a.csv").upload_blob(b"x,y\n1,2\n")
        assert service.get_blob_client("acb-stacktest", "inputs/set/a.csv").download_blob().readall() == b"x,y\n1,2\n"

        # A task's path: only a SAS URL, no key.
        sas = container_sas("acb-stacktest")
        through_sas = ContainerClient.from_container_url(f"{stack.blob_endpoint}/acb-stacktest?{sas}")
        through_sas.upload_blob("jobs/j/tasks/t/outputs/r.txt", b"result")
        assert [blob.name for blob in through_sas.list_blobs(name_starts_with="jobs/")] == [
            "jobs/j/tasks/t/outputs/r.txt"
        ]
        assert through_sas.download_blob("inputs/set/a.csv").readall() == b"x,y\n1,2\n"
        # A refused SAS request (its signature tampered with) is not logged either.
        forged = sas.replace("sig=", "sig=AAAA")
        with pytest.raises((ClientAuthenticationError, HttpResponseError)):
            ContainerClient.from_container_url(f"{stack.blob_endpoint}/acb-stacktest?{forged}").download_blob(
                "inputs/set/a.csv"
            )
        service.close()

    assert not processes_with(str(data / "azurite")), "Azurite outlived the stack"
    assert not Path(f"/proc/{azurite_pid}").exists()
    ensure_port_free(port)  # raises while anything still listens there
    assert "successfully listens" in (data / "azurite.log").read_text()  # the log is there, and holds no URL
    signature = urllib.parse.parse_qs(sas)["sig"][0]
    needles = ["sig=", signature, urllib.parse.quote(signature, safe=""), ACCOUNT_KEY, "/acb-stacktest/"]
    assert not files_holding(data, needles)


def test_the_stack_decides_its_storage_whatever_the_environment_says(
    tmp_path: Path, no_developer_storage: None
) -> None:
    without = stack_settings(tmp_path, "http://127.0.0.1:1", "http://127.0.0.1:2", "token", None)
    assert without["BATCH_STORAGE_CONNECTION_STRING"] == without["BATCH_STORAGE_ACCOUNT_URL"] == ""  # off
    assert "BATCH_AGENT_IMAGE" not in without
    own = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=k;BlobEndpoint=http://127.0.0.1:3/d;"
    with_storage = stack_settings(tmp_path, "http://127.0.0.1:1", "http://127.0.0.1:2", "token", None, own)
    assert with_storage["BATCH_STORAGE_CONNECTION_STRING"] == own
    assert with_storage["BATCH_STORAGE_ACCOUNT_URL"] == ""
    assert with_storage["BATCH_AGENT_IMAGE"] == LOCAL_AGENT_IMAGE
    # `settings=` still wins over everything, as for every other setting.
    given = stack_settings(tmp_path, "h", "a", "t", {"BATCH_AGENT_IMAGE": "reg.example/agent:2"}, own)
    assert given["BATCH_AGENT_IMAGE"] == "reg.example/agent:2"


@pytest.mark.azurite
def test_azurite_keeps_its_blobs_across_a_restart_on_the_same_data(tmp_path: Path, no_developer_storage: None) -> None:
    # The developer's AZURITE_ACCOUNTS would disable the well-known account: the process must not inherit it.
    for round_ in range(2):
        with AzuriteProcess(tmp_path / "data", log_path=tmp_path / "azurite.log") as azurite:
            service = BlobServiceClient.from_connection_string(azurite.connection_string)
            if round_ == 0:
                service.create_container("kept").upload_blob("a.txt", b"still here")
            else:
                assert service.get_blob_client("kept", "a.txt").download_blob().readall() == b"still here"
            service.close()


def test_a_missing_azurite_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_azurite(search_root=tmp_path) is None
    local = tmp_path / ".venv" / "azurite" / "node_modules" / ".bin" / "azurite-blob"
    local.parent.mkdir(parents=True)
    local.write_text("#!/bin/sh\n")
    local.chmod(0o755)
    assert find_azurite(search_root=tmp_path) == local  # where `make` installs it when npm is there
    monkeypatch.setattr("localtools.azurite.find_azurite", lambda: None)
    with pytest.raises(AzuriteMissing, match=f"run `{INSTALL_HINT}`"):
        AzuriteProcess(tmp_path / "data")
    assert not (tmp_path / "data").exists()


class Refusing(BaseHTTPRequestHandler):
    """Any other web server: it answers 403 too, but is not Azurite."""

    def do_GET(self) -> None:
        send_json(self, 403, {"error": "not azurite"})

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.mark.azurite
def test_readiness_is_azurites_own_answer_not_any_answer_on_the_port(tmp_path: Path) -> None:
    with serving_on_a_thread(HTTPServer(("127.0.0.1", 0), Refusing)) as other:
        assert not AzuriteProcess(tmp_path / "data", port=other.server_address[1]).ready()
    with AzuriteProcess(tmp_path / "data") as azurite:
        assert azurite.ready()
    assert not azurite.ready()  # stopped


def acibatch_up_says(data: Path, env: dict[str, str]) -> tuple[list[str], dict[int, dict[str, str]]]:
    """Run `acibatch up` until it is up, then Ctrl-C it: what it printed, and the Azurite processes it ran."""
    command = [sys.executable, "-m", "localdev.cli", "up", "--port", str(free_port()), "--data", str(data)]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, **env}
    )
    lines: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if "Ctrl-C stops everything" in line:
                break
        running = processes_with(str(data / "azurite"))
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, "".join(lines) + output
    return lines, running


@pytest.mark.azurite
@pytest.mark.e2e
def test_acibatch_up_runs_azurite_and_says_where(tmp_path: Path) -> None:
    lines, running = acibatch_up_says(tmp_path / "stack", {})
    said = {line[:15].strip(): line[15:].strip() for line in lines}
    assert said["blob storage"].startswith("http://127.0.0.1:") and said["blob storage"].endswith(
        f"/{ACCOUNT_NAME} (Azurite)"
    ), lines
    assert len(running) == 1
    assert not processes_with(str(tmp_path / "stack" / "azurite")), "Azurite outlived `acibatch up`"


@pytest.mark.e2e
def test_acibatch_up_without_azurite_says_how_to_install_it_and_runs_without_storage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A PATH without azurite-blob (nor anything else: the stack starts its parts with this Python, by path).
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    if find_azurite() is not None:
        pytest.skip("azurite-blob is installed inside the repo (`make` put it in .venv/azurite), not only on PATH")
    lines, running = acibatch_up_says(tmp_path / "stack", {})
    assert any(INSTALL_HINT in line for line in lines), lines
    assert any(line.startswith("blob storage   off") for line in lines), lines
    assert not running and not (tmp_path / "stack" / "azurite").exists()
