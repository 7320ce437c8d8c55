"""The agent under test: its package on sys.path (it is its own deployable, never installed in the venv), a
shared volume and secret volume in temp dirs, SAS minted with the real SDK on the session's Azurite, and the
agent's commands run as real processes by the host's python3, as aciemu runs them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.httpserve import serving_on_a_thread

# AGENT_TEST_DIR runs the tests against another copy of the agent (an older build, to see a new test fail there).
AGENT_DIR = Path(os.environ.get("AGENT_TEST_DIR") or Path(__file__).resolve().parents[2] / "agent")
if str(AGENT_DIR) not in sys.path:
    sys.path.insert(0, str(AGENT_DIR))

# The agent image runs python3 from a slim image; here the host's, like aciemu (AGENT_TEST_PYTHON picks another,
# e.g. a 3.9 to prove the agent still runs on the oldest Python it supports).
PYTHON = os.environ.get("AGENT_TEST_PYTHON") or shutil.which("python3", path="/usr/bin") or sys.executable


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    """The test's environment minus proxies (a loopback Azurite must not go through one) plus `extra`."""
    env = {key: value for key, value in os.environ.items() if "proxy" not in key.lower()}
    env.update(extra)
    return env


@dataclass
class Volume:
    """A task's shared volume (`root`) and secret volume (`secrets`) in temp dirs."""

    root: Path
    secrets: Path

    @property
    def wd(self) -> Path:
        return self.root / "wd"

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def run(self) -> Path:
        return self.root / "bin" / "run"

    def env(self, **extra: str) -> dict[str, str]:
        return clean_env({"ACIBATCH_ROOT": str(self.root), "ACIBATCH_SECRETS": str(self.secrets), **extra})

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        full = {"version": 1, "attempt": 1, "workDir": str(self.wd), "inputs": [], "outputs": [], **manifest}
        (self.secrets / "manifest.json").write_text(json.dumps(full))

    def agent(self, command: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [PYTHON, "-m", "acibatch_agent", command],
            cwd=AGENT_DIR,
            env=self.env(**env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        )

    def start_agent(self, command: str, **env: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [PYTHON, "-m", "acibatch_agent", command],
            cwd=AGENT_DIR,
            env=self.env(**env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def wrap(self, *command: str, **env: str) -> subprocess.Popen[str]:
        """The task container: the user's command under the wrapper, as /bin/sh /acibatch/bin/run CMD..."""
        return subprocess.Popen(["/bin/sh", str(self.run), *command], env=self.env(**env), text=True)

    def stagein(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads((self.state / "stagein.json").read_text())
        return value


@pytest.fixture
def volume(tmp_path: Path) -> Volume:
    (tmp_path / "secrets").mkdir()
    return Volume(tmp_path / "acibatch", tmp_path / "secrets")


@dataclass
class Storage:
    """The session's Azurite through the real SDK, with helpers that mint SAS the way the app does."""

    service: Any
    account_name: str
    account_key: str
    containers: list[str] = field(default_factory=list)

    def container(self, name: str) -> Any:
        client = self.service.create_container(name)
        self.containers.append(name)
        return client

    def container_url(self, name: str, permission: str) -> str:
        from azure.storage.blob import ContainerSasPermissions, generate_container_sas

        sas = generate_container_sas(
            self.account_name,
            name,
            account_key=self.account_key,
            permission=ContainerSasPermissions.from_string(permission),
            expiry=datetime.now(UTC) + timedelta(hours=1),
        )
        return f"{self.service.url.rstrip('/')}/{name}?{sas}"

    def blob_url(self, container: str, blob: str, permission: str) -> str:
        from azure.storage.blob import BlobSasPermissions, generate_blob_sas

        sas = generate_blob_sas(
            self.account_name,
            container,
            blob,
            account_key=self.account_key,
            permission=BlobSasPermissions.from_string(permission),
            expiry=datetime.now(UTC) + timedelta(hours=1),
        )
        return f"{self.service.url.rstrip('/')}/{container}/{blob}?{sas}"

    def read(self, container: str, blob: str) -> bytes:
        data: bytes = self.service.get_blob_client(container, blob).download_blob().readall()
        return data

    def names(self, container: str) -> list[str]:
        return sorted(blob.name for blob in self.service.get_container_client(container).list_blobs())


@pytest.fixture
def storage(azurite: Any) -> Iterator[Storage]:
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    store = Storage(service, azurite.account_name, azurite.account_key)
    try:
        yield store
    finally:
        for name in store.containers:
            service.delete_container(name)
        service.close()


def signature(url: str) -> str:
    """The `sig=` value of a SAS URL: what must never show up anywhere the agent writes."""
    return next(part for part in url.split("?", 1)[1].split("&") if part.startswith("sig="))


@dataclass
class Callbacks:
    url: str
    received: list[tuple[str, dict[str, Any]]]
    answers: list[int]  # statuses to answer with, in turn, before 200s

    def wait(self, count: int = 1, timeout: float = 60) -> list[tuple[str, dict[str, Any]]]:
        import time

        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.received


@pytest.fixture
def callbacks() -> Iterator[Callbacks]:
    """A stand-in for acibatch's callback endpoint that records each report with its Authorization header."""
    received: list[tuple[str, dict[str, Any]]] = []
    answers: list[int] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with lock:
                status = answers.pop(0) if answers else 200
                if status == 200:
                    received.append((self.headers.get("Authorization", ""), body))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    with serving_on_a_thread(ThreadingHTTPServer(("127.0.0.1", 0), Handler)) as server:
        yield Callbacks(f"http://127.0.0.1:{server.server_address[1]}/api/callbacks/x", received, answers)


TOKEN = "attempt-token-not-for-logs"
PREFIX = "jobs/j/tasks/t"


@dataclass
class Task:
    volume: Volume
    storage: Storage
    callbacks: Callbacks
    container: str
    sas: list[str]

    def manifest(
        self, outputs: list[dict[str, Any]], inputs: list[dict[str, Any]] | None = None, result_permission: str = "cw"
    ) -> None:
        logs = {  # the app's log SAS permissions (acibatch/blobstore/sas.py): no write
            stream: self.mint(self.storage.blob_url(self.container, f"{PREFIX}/attempts/1/{stream}.txt", "rac"))
            for stream in ("stdout", "stderr")
        }
        blob = f"{PREFIX}/attempts/1/result.json"
        result = self.mint(self.storage.blob_url(self.container, blob, result_permission))
        self.volume.write_manifest({"inputs": inputs or [], "outputs": outputs, "logs": logs, "result": result})

    def mint(self, url: str) -> str:
        self.sas.append(signature(url))
        return url

    def default_output(self, pattern: str, condition: str = "taskCompletion", path: str = "") -> dict[str, Any]:
        url = self.mint(self.storage.container_url(self.container, "cw"))
        return {
            "filePattern": pattern,
            "uploadCondition": condition,
            "containerUrl": url,
            "path": f"{PREFIX}/outputs/{path}",
            "destination": "default",
        }

    def custom_output(self, pattern: str, condition: str, path: str, permission: str) -> tuple[str, dict[str, Any]]:
        """A new container of the tenant's own and an output to it through a SAS with `permission`."""
        custom = f"own-{uuid.uuid4().hex[:12]}"
        self.storage.container(custom)
        url = self.mint(self.storage.container_url(custom, permission))
        output = {
            "filePattern": pattern,
            "uploadCondition": condition,
            "containerUrl": url,
            "path": path,
            "destination": "custom",
        }
        return custom, output

    def sidecar(self, **env: str) -> subprocess.Popen[str]:
        return self.volume.start_agent(
            "sidecar", BATCH_CALLBACK_URL=self.callbacks.url, BATCH_CALLBACK_TOKEN=TOKEN, **env
        )

    def finish(self, sidecar: subprocess.Popen[str], timeout: float = 180) -> tuple[dict[str, Any], str]:
        """Wait for the sidecar; result.json from storage and everything the sidecar printed."""
        printed = self.wait(sidecar, timeout)
        result = json.loads(self.storage.read(self.container, f"{PREFIX}/attempts/1/result.json"))
        return result, printed

    def wait(self, sidecar: subprocess.Popen[str], timeout: float = 180) -> str:
        """Wait for the sidecar to exit 0 (killed if it does not in time); everything it printed."""
        try:
            out, err = sidecar.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            sidecar.kill()
            sidecar.communicate()
            raise
        assert sidecar.returncode == 0
        return out + err

    def log(self, stream: str) -> bytes:
        return self.storage.read(self.container, f"{PREFIX}/attempts/1/{stream}.txt")

    def assert_no_secret(self, *texts: str) -> None:
        written = [path.read_text(errors="replace") for path in self.volume.state.iterdir() if path.is_file()]
        everything = "\n".join([*texts, *written, json.dumps(self.callbacks.received)])
        for sig in self.sas:
            assert sig not in everything
        assert TOKEN not in "\n".join([*texts, *written])


@pytest.fixture
def task(volume: Volume, storage: Storage, callbacks: Callbacks) -> Task:
    name = f"acb-{uuid.uuid4().hex[:12]}"
    storage.container(name)
    return Task(volume, storage, callbacks, name, [])


def staged(task: Task, outputs: list[dict[str, Any]]) -> None:
    task.manifest(outputs)
    task.volume.agent("stage-in")
