"""Issue 22, finding 1: a tenant's notifyUrl cannot reach devhost's Durable HTTP API (or anything internal).

The attack that worked: tenant A's job notifies devhost's terminate URL for tenant B's running job, and B's job
is terminated. Here every route to that URL is tried on the real local stack: literal loopback spellings (400 at
submit), a host name that resolves to loopback and a redirect from A's own allowed receiver (both refused when
the notification is sent). B's job keeps running and succeeds. A control shows the URL is deadly when posted
directly, so the test would fail if the guard let the notification through.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote

import pytest

from acibatch.naming import job_instance_id
from acibatch.tokens import verify_notification
from localdev.client import ApiCallError, BatchClient
from localdev.localstack import LocalStack, local_stack
from tests.e2e.conftest import make_tenant, python_job, wait_job
from tests.httpserve import serving_on_a_thread

pytestmark = pytest.mark.e2e

QUOTA = {"maxGroups": 4, "maxCores": 4, "maxMemoryGb": 8, "weight": 1}
# B's job must outlive A's notification attempts (the job orchestrator retries a failed notify 5 times, 5 s apart).
VICTIM_SECONDS = 60


@dataclass
class Receiver:
    """Tenant A's webhook receiver on 127.0.0.1, the one port the stack's allow-list names."""

    server: ThreadingHTTPServer
    redirect_to: str = ""
    seen: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    record = Receiver(ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler))

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            record.seen.append((self.path, dict(self.headers.items()), body))
            if self.path.startswith("/redirect"):
                self.send_response(307)
                self.send_header("Location", record.redirect_to)
            else:
                self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    record.server.RequestHandlerClass = Handler
    with serving_on_a_thread(record.server):
        yield record


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> Iterator[LocalStack]:
    # What the local stack must pass for tests that notify a local receiver: http allowed (no TLS on loopback)
    # and exactly the receiver's port; never devhost's or aciemu's.
    settings = {
        "BATCH_POLL_SECONDS": "1",
        "BATCH_OUTBOUND_ALLOW_HTTP": "true",
        "BATCH_OUTBOUND_ALLOW": f"127.0.0.1:{receiver.port}",
    }
    with local_stack(tmp_path_factory.mktemp("ssrf"), settings=settings) as running:
        yield running


def durable_status(stack: LocalStack, instance_id: str) -> dict[str, Any]:
    url = f"{stack.host_url}/runtime/webhooks/durabletask/instances/{quote(instance_id, safe='')}"
    request = urllib.request.Request(url, headers={"x-functions-key": stack.durable_key})
    with urllib.request.urlopen(request, timeout=30) as response:
        status: dict[str, Any] = json.loads(response.read())
    return status


def terminate_url(stack: LocalStack, instance_id: str, host: str = "127.0.0.1") -> str:
    """devhost's Durable terminate URL, with the system key: the worst case, a tenant who learned the key."""
    port = stack.host_url.rsplit(":", 1)[1]
    return (
        f"http://{host}:{port}/runtime/webhooks/durabletask/instances/{quote(instance_id, safe='')}/terminate"
        f"?reason=ssrf&code={stack.durable_key}"
    )


def wait_running(client: BatchClient, job_id: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while client.job(job_id)["state"] != "Running":
        assert time.monotonic() < deadline, f"job {job_id} did not start"
        time.sleep(0.3)


def test_tenant_a_cannot_aim_its_notify_url_at_devhost_to_terminate_tenant_b_job(
    stack: LocalStack, receiver: Receiver
) -> None:
    admin = BatchClient(stack.api_url, stack.admin_key)
    tenant_a, tenant_b = make_tenant(admin, "ssrf-a", **QUOTA), make_tenant(admin, "ssrf-b", **QUOTA)
    sleeper = f"import time; time.sleep({VICTIM_SECONDS})"
    tenant_b.submit(python_job(sleeper, jobId="victim", taskTimeoutSeconds=VICTIM_SECONDS * 3))
    tenant_b.submit(python_job(sleeper, jobId="decoy", taskTimeoutSeconds=VICTIM_SECONDS * 3))
    wait_running(tenant_b, "victim")
    wait_running(tenant_b, "decoy")

    # Control: the terminate URL, posted directly, does terminate a job of B's. Only the guard stands between it
    # and a notification.
    decoy = urllib.request.Request(terminate_url(stack, job_instance_id("ssrf-b", "decoy")), data=b"", method="POST")
    with urllib.request.urlopen(decoy, timeout=30) as response:
        assert response.status == 202
    assert wait_job(tenant_b, "decoy", timeout=30)["state"] == "Cancelled"

    victim = job_instance_id("ssrf-b", "victim")
    target = terminate_url(stack, victim)
    devhost_port = stack.host_url.rsplit(":", 1)[1]
    # 1. Literal loopback in any spelling: refused at submit, 400 saying why; the URL's key is never echoed.
    spellings = ["127.0.0.1", "localhost", "2130706433", "0x7f.1", "0177.0.0.1", "127.1", "[::ffff:127.0.0.1]",
                 "[::1]", "0", "0.0.0.0", "LOCALHOST."]  # fmt: skip
    for spelling in spellings:
        url = target.replace(f"http://127.0.0.1:{devhost_port}", f"http://{spelling}:{devhost_port}")
        with pytest.raises(ApiCallError) as caught:
            tenant_a.submit(python_job("pass", notifyUrl=url))
        error = caught.value
        assert error.status == 400 and error.code == "InvalidJobSpec", spelling
        [detail] = error.details
        assert detail["path"] == "notifyUrl" and "which tenants may not reach" in detail["message"], detail
        assert stack.durable_key not in str(error)

    # 2. What no static check can see: this machine's own name (it resolves to loopback or a private address),
    #    and A's own allowed receiver answering with a redirect to the terminate URL. Accepted at submit; refused
    #    when sending.
    own_name = socket.gethostname()
    resolved = {str(info[4][0]) for info in socket.getaddrinfo(own_name, 80, type=socket.SOCK_STREAM)}
    receiver.redirect_to = target
    jobs = {
        "via-redirect": f"http://127.0.0.1:{receiver.port}/redirect",
        "delivered": f"http://127.0.0.1:{receiver.port}/hook",
    }
    if any(not ipaddress.ip_address(address).is_global for address in resolved):
        jobs["via-dns"] = terminate_url(stack, victim, host=own_name)
    for job_id, url in jobs.items():
        assert tenant_a.submit(python_job("pass", jobId=job_id, notifyUrl=url))["jobId"] == job_id
    for job_id in jobs:
        assert wait_job(tenant_a, job_id, timeout=120)["state"] == "Succeeded"
    # B's job was never touched: still running after all of A's notification attempts.
    assert durable_status(stack, victim)["runtimeStatus"] == "Running"
    assert tenant_b.job("victim")["state"] == "Running"

    # 3. Each refusal says why (without the URL's key); the allowed receiver got its signed notification once.
    outputs = {job_id: durable_status(stack, job_instance_id("ssrf-a", job_id))["output"] for job_id in jobs}
    assert "notifyError" not in outputs["delivered"]
    delivered = [(headers, body) for path, headers, body in receiver.seen if path == "/hook"]
    assert len(delivered) == 1
    headers, body = delivered[0]
    assert json.loads(body)["jobId"] == "delivered"
    assert verify_notification(
        headers["X-Acibatch-Signature"], body, [stack.settings["BATCH_CALLBACK_SIGNING_KEY"]], int(time.time())
    )
    redirect_error = outputs["via-redirect"]["notifyError"]
    assert "HTTP 307" in redirect_error and "redirects are not followed" in redirect_error
    assert [path for path, _, _ in receiver.seen].count("/redirect") == 1  # a refusal is final: never retried
    if "via-dns" in jobs:
        assert f"host {own_name.lower()} resolves to " in outputs["via-dns"]["notifyError"]
    for output in outputs.values():
        assert stack.durable_key not in json.dumps(output)

    # 4. B's job runs to its end.
    assert wait_job(tenant_b, "victim", timeout=VICTIM_SECONDS * 2)["state"] == "Succeeded"
