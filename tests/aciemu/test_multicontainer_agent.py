"""The agent task's container group (docs/files.md) on aciemu: the real agent package (mapped by the local stack's
image catalog) stages an input over HTTP into the shared emptyDir from a secret-volume manifest, the task runs
wrapped by the agent's `run`, and a stand-in sidecar sees the task's exit record and streams. Storage and the real
sidecar are out of scope here (the local-stack tests run them against Azurite)."""

from __future__ import annotations

import base64
import json
import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from azure.mgmt.containerinstance.models import (
    Container,
    ContainerGroup,
    EnvironmentVariable,
    InitContainerDefinition,
    ResourceRequests,
    ResourceRequirements,
    Volume,
    VolumeMount,
)

from aciemu.client import emulator_client
from aciemu.launcher import AciEmulatorProcess
from aciemu.sandbox import bwrap_path

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(bwrap_path() is None, reason="volumes need bubblewrap (bwrap) to be mounted in containers"),
]
REPO_ROOT = Path(__file__).resolve().parents[2]
RG = "rg-agent"
AGENT_IMAGE = "myregistry.azurecr.io/acibatch/agent:1"
WORKER_IMAGE = "myregistry.azurecr.io/acibatch/worker:1"
CONTENT = b"input-bytes-for-the-task\n"


class InputServer(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(CONTENT)))
        self.end_headers()
        self.wfile.write(CONTENT)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def input_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), InputServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/data.txt"
    server.shutdown()
    server.server_close()


def resources(cpu: float) -> ResourceRequirements:
    return ResourceRequirements(requests=ResourceRequests(cpu=cpu, memory_in_gb=0.5))


def agent_group(manifest: dict[str, Any]) -> ContainerGroup:
    shared = VolumeMount(name="acibatch", mount_path="/acibatch")
    secret = VolumeMount(name="acibatch-secrets", mount_path="/acibatch-secrets", read_only=True)
    encoded = base64.b64encode(json.dumps(manifest).encode()).decode()
    volumes = [
        Volume(name="acibatch", empty_dir={}),
        Volume(name="acibatch-secrets", secret={"manifest.json": encoded}),
    ]
    user = ["sh", "-c", "cat /acibatch/wd/in/data.txt; echo to-stderr >&2; exit 3"]
    sidecar = (
        "while [ ! -f /acibatch/state/exit ]; do sleep 0.05; done;"
        " echo exit=$(cat /acibatch/state/exit); cat /acibatch/state/stagein.json /acibatch/logs/stdout.txt"
        " /acibatch/logs/stderr.txt; ls /acibatch-secrets"
    )
    return ContainerGroup(
        location="westeurope", os_type="Linux", restart_policy="Never",
        volumes=volumes,
        init_containers=[InitContainerDefinition(
            name="acibatch-stagein", image=AGENT_IMAGE, command=["python3", "-m", "acibatch_agent", "stage-in"],
            volume_mounts=[shared, secret],
        )],
        containers=[
            Container(
                name="task", image=WORKER_IMAGE, command=["/bin/sh", "/acibatch/bin/run", *user],
                environment_variables=[EnvironmentVariable(name="ACIBATCH_WORK_DIR", value="/acibatch/wd")],
                resources=resources(0.5), volume_mounts=[shared],
            ),
            Container(name="acibatch-agent", image="busybox", command=["/bin/sh", "-c", sidecar],
                      resources=resources(0.1), volume_mounts=[shared, secret]),
        ],
    )  # fmt: skip


def test_the_agent_group_stages_inputs_and_shares_the_task_exit_with_the_sidecar(
    tmp_path: Path, input_url: str
) -> None:
    signature = f"sig-{secrets.token_hex(12)}"
    manifest = {
        "version": 1, "attempt": 1, "workDir": "/acibatch/wd",
        "inputs": [{"kind": "http", "url": f"{input_url}?sv=2024&sig={signature}", "filePath": "in/data.txt",
                    "fileMode": "0770"}],
        "outputs": [], "logs": {}, "result": "",
    }  # fmt: skip
    args = ["--images", str(REPO_ROOT / "examples" / "images.json")]
    with AciEmulatorProcess(tmp_path / "state", args=args, log_path=tmp_path / "state" / "aciemu.log") as emulator:
        client = emulator_client(emulator.url, emulator.token)
        client.container_groups.begin_create_or_update(RG, "agent-task", agent_group(manifest)).result()
        deadline_checks = 400
        found = client.container_groups.get(RG, "agent-task")
        while found.instance_view.state not in {"Succeeded", "Failed"} and deadline_checks:
            deadline_checks -= 1
            threading.Event().wait(0.05)
            found = client.container_groups.get(RG, "agent-task")
        states = {c.name: c.instance_view.current_state for c in [*found.init_containers, *found.containers]}
        assert {name: state.exit_code for name, state in states.items()} == {
            "acibatch-stagein": 0, "task": 3, "acibatch-agent": 0,
        }  # fmt: skip
        assert found.instance_view.state == "Failed"  # Never, and the task container exited non-zero
        sidecar = client.containers.list_logs(RG, "agent-task", "acibatch-agent").content.splitlines()
        assert sidecar[0] == "exit=3"
        assert json.loads(sidecar[1])["ok"] is True
        assert sidecar[2:] == [CONTENT.decode().strip(), "to-stderr", "manifest.json"]
    leaked = [str(p) for p in tmp_path.rglob("*") if p.is_file() and signature.encode() in p.read_bytes()]
    assert leaked == []
