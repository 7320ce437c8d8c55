"""The HTTP API's contract: auth, tenant isolation, validation, idempotency, limits and the CLI."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from openapi_spec_validator import validate

from localdev import cli
from localdev.client import ApiCallError, BatchClient
from localdev.localstack import LocalStack
from tests.e2e.conftest import make_tenant, python_job, wait_job

pytestmark = pytest.mark.e2e

QUICK = "import acibatch_report as r; r.succeeded({'ok': 1})"


def raw(
    stack: LocalStack, method: str, path: str, body: bytes | None = None, key: str | None = None
) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(f"{stack.api_url}/{path}", data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


@pytest.fixture(scope="module")
def pair(admin: BatchClient) -> tuple[BatchClient, BatchClient]:
    return make_tenant(admin, "alice"), make_tenant(admin, "bob")


def test_health_and_openapi(stack: LocalStack) -> None:
    assert raw(stack, "GET", "health") == (200, {"status": "ok"})
    status, document = raw(stack, "GET", "openapi.json")
    assert status == 200
    validate(document)
    assert document["servers"] == [{"url": stack.api_url}]


def test_keys_are_required_and_checked(stack: LocalStack, pair: tuple[BatchClient, BatchClient]) -> None:
    alice, _ = pair
    status, body = raw(stack, "GET", "jobs")
    assert status == 401 and "Authorization: Bearer" in body["error"]["message"]
    assert raw(stack, "GET", "jobs", key="acb_alice_wrong")[0] == 401
    assert raw(stack, "GET", "jobs", key="nonsense")[0] == 401
    assert raw(stack, "PUT", "tenants/mallory", b"{}", key=alice.key)[0] == 403
    assert raw(stack, "POST", "tenants/alice/keys", b"{}", key=alice.key)[0] == 403
    assert raw(stack, "POST", "jobs", json.dumps(python_job(QUICK)).encode(), key=stack.admin_key)[0] == 403


def test_tenants_see_only_their_own_jobs(admin: BatchClient, pair: tuple[BatchClient, BatchClient]) -> None:
    alice, bob = pair
    alice.submit(python_job(QUICK, jobId="private"))
    assert wait_job(alice, "private")["state"] == "Succeeded"
    for call in (lambda: bob.job("private"), lambda: bob.cancel("private"), lambda: bob.logs("private", "0"),
                 lambda: bob.get_tenant("alice")):  # fmt: skip
        with pytest.raises(ApiCallError) as denied:
            call()
        assert denied.value.status == 404
    assert [job["jobId"] for job in bob.jobs()["jobs"]] == []
    assert alice.get_tenant("alice")["usage"]["tasks"]["succeeded"] >= 1
    assert admin.get_tenant("alice")["tenant"] == "alice"


def test_a_job_read_checks_the_key_before_it_shows_anything(
    stack: LocalStack, pair: tuple[BatchClient, BatchClient]
) -> None:
    """`GET /api/jobs/{id}` checks the key before it reads the job: a wrong key for the job's own tenant is 401 (not
    the job, not a 404), whatever the query; the admin key is 403; another tenant's key is 404; a bad query with a
    good key is 400."""
    alice, bob = pair
    alice.submit(python_job(QUICK, jobId="keyfirst"))
    assert wait_job(alice, "keyfirst")["state"] == "Succeeded"
    for path in ("jobs/keyfirst", "jobs/nosuchjob", "jobs/keyfirst?limit=-1", "jobs/bad%20id"):
        status, body = raw(stack, "GET", path, key="acb_alice_wrong")
        assert status == 401 and "keyfirst" not in json.dumps(body), path
    assert raw(stack, "GET", "jobs/keyfirst", key=stack.admin_key)[0] == 403
    assert raw(stack, "GET", "jobs/keyfirst", key=bob.key)[0] == 404
    assert raw(stack, "GET", "jobs/keyfirst?limit=-1", key=alice.key)[0] == 400
    status, body = raw(stack, "GET", "jobs/keyfirst", key=alice.key)
    assert status == 200 and body["jobId"] == "keyfirst" and body["tasks"][0]["state"] == "Succeeded"


def test_invalid_specs_list_every_error_and_start_nothing(pair: tuple[BatchClient, BatchClient]) -> None:
    _, bob = pair
    before = bob.jobs()["total"]
    with pytest.raises(ApiCallError) as invalid:
        bob.submit({"jobId": "bad/id", "image": "UPPER", "cpu": -1, "taskCount": 10_001, "extra": True})
    assert invalid.value.status == 400
    paths = {detail["path"] for detail in invalid.value.details}
    assert paths == {"jobId", "image", "cpu", "taskCount", "extra"}
    assert bob.jobs()["total"] == before


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid UTF-8"),
        (b"", "empty"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"image": "python", "taskCount": NaN}', "not valid JSON"),
    ],
)
def test_malformed_bodies_are_400(stack: LocalStack, pair: tuple[BatchClient, BatchClient], body: bytes,
                                  fragment: str) -> None:  # fmt: skip
    status, answer = raw(stack, "POST", "jobs", body, key=pair[0].key)
    assert status == 400 and fragment in answer["error"]["message"]


def test_oversized_body_is_413(stack: LocalStack, pair: tuple[BatchClient, BatchClient]) -> None:
    body = json.dumps({"image": "python", "taskCount": 1, "env": {"X": "x" * (1024 * 1024)}}).encode()
    status, answer = raw(stack, "POST", "jobs", body, key=pair[0].key)
    assert status == 413 and "limit" in answer["error"]["message"]


def test_submit_is_idempotent_on_job_id(pair: tuple[BatchClient, BatchClient]) -> None:
    alice, _ = pair
    spec = python_job(QUICK, jobId="once")
    first, second = alice.submit(spec), alice.submit(dict(spec))
    assert first["jobId"] == second["jobId"] == "once"
    with pytest.raises(ApiCallError) as conflict:
        alice.submit({**spec, "cpu": 0.5})
    assert conflict.value.status == 409
    wait_job(alice, "once")
    with pytest.raises(ApiCallError) as no_task:
        alice.logs("once", "99")
    assert no_task.value.status == 404 and no_task.value.code == "TaskNotFound"
    assert alice.submit(dict(spec))["jobId"] == "once"
    listed = alice.jobs(state="Succeeded")
    assert "once" in {job["jobId"] for job in listed["jobs"]}
    assert all(job["state"] == "Succeeded" for job in listed["jobs"])
    page = alice.jobs(limit=1)
    assert len(page["jobs"]) == 1 and page["nextOffset"] == 1


def test_tenant_update_and_key_rotation(stack: LocalStack, admin: BatchClient) -> None:
    client = make_tenant(admin, "rotating")
    updated = admin.put_tenant("rotating", {"maxGroups": 3})
    assert updated["created"] is False and "apiKey" not in updated
    assert updated["quota"]["maxGroups"] == 3 and updated["quota"]["maxCores"] == 2
    new_key = admin.rotate_key("rotating")["apiKey"]
    assert raw(stack, "GET", "jobs", key=client.key)[0] == 401
    assert raw(stack, "GET", "jobs", key=new_key)[0] == 200
    with pytest.raises(ApiCallError) as bad:
        admin.put_tenant("Bad_Name", {})
    assert bad.value.status == 400
    with pytest.raises(ApiCallError) as bad_quota:
        admin.put_tenant("rotating", {"maxGroups": 0, "weight": "x", "color": "red"})
    assert {d["path"] for d in bad_quota.value.details} == {"maxGroups", "weight", "color"}
    with pytest.raises(ApiCallError) as missing:
        admin.rotate_key("nobody")
    assert missing.value.status == 404


def test_cli(stack: LocalStack, admin: BatchClient, tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--url", stack.api_url]
    assert cli.main([*base, f"--key={stack.admin_key}", "--json", "tenant", "create", "cli", "--max-groups", "2"]) == 0
    key = json.loads(capsys.readouterr().out)["apiKey"]
    spec_file = tmp_path / "job.json"
    spec_file.write_text(json.dumps(python_job(QUICK, tasks=2, jobId="from-cli")))
    assert cli.main([*base, "--key", key, "submit", str(spec_file), "--wait"]) == 0
    assert "from-cli" in capsys.readouterr().out
    assert cli.main([*base, "--key", key, "status", "from-cli"]) == 0
    out = capsys.readouterr().out
    assert "Succeeded" in out and "attempts 1" in out
    assert cli.main([*base, "--key", key, "jobs"]) == 0
    assert "from-cli" in capsys.readouterr().out
    assert cli.main([*base, "--key", key, "cancel", "from-cli"]) == 1
    assert "already finished" in capsys.readouterr().err
    assert cli.main([*base, "--key", "acb_cli_wrong", "jobs"]) == 1
    assert "key is not valid" in capsys.readouterr().err
    assert cli.main(["--url", "http://127.0.0.1:9/api", "--key", key, "jobs"]) == 1
    assert "cannot reach" in capsys.readouterr().err


def test_acibatch_up_serves_until_interrupted(tmp_path: Any) -> None:
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from devhost.launcher import free_port

    port = free_port()
    command = [sys.executable, "-m", "localdev.cli", "up", "--port", str(port), "--data", str(tmp_path)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as process:
        assert process.stdout is not None
        try:
            lines = []
            for line in process.stdout:
                lines.append(line)
                if "Ctrl-C stops everything" in line:
                    break
            admin_key = next(line.split()[-1] for line in lines if line.startswith("admin key"))
            client = BatchClient(f"http://127.0.0.1:{port}/api", admin_key)
            assert client.put_tenant("viaup", {})["created"] is True
            time.sleep(1)
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=60)
        # Read through the same buffered reader: communicate() would skip what it already buffered.
        output = process.stdout.read()
    assert process.returncode == 0
    assert "[devhost]" in output and "stopped." in output
    leftovers = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and str(tmp_path).encode() in (entry / "cmdline").read_bytes():
                leftovers.append(entry.name)
        except OSError:
            continue
    assert leftovers == []  # devhost and aciemu were stopped
