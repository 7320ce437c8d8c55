"""Cross-tenant isolation on the local stack: a tenant's container reaches aciemu's ARM API and devhost's Durable
HTTP API (containers share the host's loopback network, as they must to call devhost back) but, without the
emulator's token or the Durable extension's system key, reads nothing of another tenant's container groups or
orchestrations, changes nothing, terminates nothing, and injects no fault.

The thief is handed the URLs (the point is the token, not the port, which any local process can find), tries no
token and the constant tokens the app's and the emulator's clients sent before aciemu checked one, and reports
every status and body it got back. The test then calls the same URLs with the token to show they were the right
ones: with it, the victim's group, env and log are there to read.
"""

from __future__ import annotations

import json
import secrets
import time
import urllib.request
from typing import Any

import pytest

from acibatch.aci import AciGateway
from acibatch.naming import job_instance_id
from localdev.client import BatchClient
from localdev.localstack import LocalStack
from tests.e2e.conftest import make_tenant, python_job, wait_job

pytestmark = pytest.mark.e2e

API_VERSION = "api-version=2023-05-01"
# The constant tokens `acibatch.aci` and `aciemu.client` sent before the emulator checked them.
GUESSED_AUTHORIZATIONS = ["", "Bearer local", "Bearer emulator"]

VICTIM_CODE = (
    "import os, time, acibatch_report as r\n"
    "print('victim log ' + os.environ['VICTIM_MARK'], flush=True)\n"
    "time.sleep(float(os.environ['HOLD_SECONDS']))\n"
    "r.succeeded()\n"
)
# Calls each target with each guessed Authorization (none, or a constant) and reports status and body.
THIEF_CODE = (
    "import json, os, urllib.request, urllib.error, acibatch_report as r\n"
    "seen = {}\n"
    "for name, (method, url, body) in json.loads(os.environ['TARGETS']).items():\n"
    "    for auth in json.loads(os.environ['AUTHS']):\n"
    "        headers = {'Content-Type': 'application/json', **({'Authorization': auth} if auth else {})}\n"
    "        data = json.dumps(body).encode() if body is not None else None\n"
    "        request = urllib.request.Request(url, data=data, method=method, headers=headers)\n"
    "        try:\n"
    "            with urllib.request.urlopen(request, timeout=10) as answer:\n"
    "                status, text = answer.status, answer.read().decode(errors='replace')\n"
    "        except urllib.error.HTTPError as error:\n"
    "            status, text = error.code, error.read().decode(errors='replace')\n"
    "        seen[f'{name} {auth or \"(none)\"}'] = [status, text[:300]]\n"
    "r.succeeded(seen)\n"
)


def targets(stack: LocalStack, victim_group: str) -> dict[str, tuple[str, str, Any]]:
    sub, rg = stack.settings["ACI_SUBSCRIPTION_ID"], stack.settings["ACI_RESOURCE_GROUP"]
    groups = (
        f"{stack.aci_url}/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ContainerInstance/containerGroups"
    )
    vanish = {"op": "get", "fault": "vanish", "afterSeconds": 0, "match": {"name": victim_group}}
    durable = f"{stack.host_url}/runtime/webhooks/durabletask"
    victim_job = job_instance_id("emu-victim", "held")
    return {
        "list-rg": ("GET", f"{groups}?{API_VERSION}", None),
        "list-sub": (
            "GET",
            f"{stack.aci_url}/subscriptions/{sub}/providers/Microsoft.ContainerInstance/containerGroups?{API_VERSION}",
            None,
        ),
        "get": ("GET", f"{groups}/{victim_group}?{API_VERSION}", None),
        "logs": ("GET", f"{groups}/{victim_group}/containers/task/logs?{API_VERSION}", None),
        "stop": ("POST", f"{groups}/{victim_group}/stop?{API_VERSION}", None),
        "delete": ("DELETE", f"{groups}/{victim_group}?{API_VERSION}", None),
        "faults": ("POST", f"{stack.aci_url}/_emulator/faults", vanish),
        # devhost's Durable HTTP API needs the extension's system key, which no container is given.
        "durable-status": ("GET", f"{durable}/instances/{victim_job}?showInput=true", None),
        "durable-list": ("GET", f"{durable}/instances", None),
        "durable-terminate": ("POST", f"{durable}/instances/{victim_job}/terminate?reason=heist", None),
    }


def call(method: str, url: str, token: str) -> tuple[int, str]:
    request = urllib.request.Request(url, method=method, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return answer.status, answer.read().decode()


def wait_for_group(gateway: AciGateway, tenant: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        names = [group.name for group in gateway.list_app_groups() if group.tags.get("tenant") == tenant]
        if names and "victim log" in (gateway.logs(names[0], None) or ""):
            return names[0]
        time.sleep(0.3)
    raise AssertionError(f"no running container group of tenant {tenant} within {timeout} s")


def test_a_tenants_container_cannot_use_the_emulator_api_without_its_token(
    stack: LocalStack, admin: BatchClient, gateway: AciGateway
) -> None:
    mark, plain = "mark-" + secrets.token_hex(8), "plain-" + secrets.token_hex(8)
    victim = make_tenant(admin, "emu-victim")
    victim.submit(
        python_job(VICTIM_CODE, jobId="held", env={"VICTIM_MARK": mark, "VICTIM_PLAIN": plain, "HOLD_SECONDS": "20"})
    )
    victim_group = wait_for_group(gateway, "emu-victim")
    urls = targets(stack, victim_group)

    thief = make_tenant(admin, "emu-thief")
    env = {"TARGETS": json.dumps(urls), "AUTHS": json.dumps(GUESSED_AUTHORIZATIONS)}
    thief.submit(python_job(THIEF_CODE, jobId="heist", env=env))
    heist = wait_job(thief, "heist")
    assert heist["state"] == "Succeeded", heist
    seen: dict[str, list[Any]] = heist["tasks"][0]["result"]
    assert len(seen) == len(urls) * len(GUESSED_AUTHORIZATIONS)

    for attempt, (status, body) in seen.items():
        assert status == 401, f"{attempt}: {status} {body}"
        for leaked in (mark, plain, victim_group, "emu-victim"):
            assert leaked not in body, f"{attempt} leaked {leaked!r}"
        if attempt.startswith("durable-"):
            continue  # the host's 401 has no body
        error = json.loads(body)["error"]
        missing = attempt.endswith("(none)")
        assert error["code"] == ("AuthenticationFailed" if missing else "InvalidAuthenticationToken"), attempt

    # The same URLs with the token: they were the right ones, and the victim's group was there, untouched.
    _, group = call("GET", urls["get"][1], stack.aci_token)
    assert plain in group and json.loads(group)["properties"]["instanceView"]["state"] == "Running"
    _, listed = call("GET", urls["list-rg"][1], stack.aci_token)
    assert victim_group in listed and plain in listed
    _, log = call("GET", urls["logs"][1], stack.aci_token)
    assert mark in log
    _, faults = call("GET", f"{stack.aci_url}/_emulator/faults", stack.aci_token)
    assert victim_group not in faults  # the thief's vanish rule was never added

    held = wait_job(victim, "held")
    assert held["state"] == "Succeeded" and held["tasks"][0]["attempts"] == 1  # never stopped, deleted or vanished
