"""Secrets never leak: after a full job, scan histories, statuses, entity states, API answers, logs and ACI."""

from __future__ import annotations

import json
import secrets
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from acibatch.naming import task_instance_id
from acibatch.tokens import callback_token
from localdev.client import BatchClient
from localdev.localstack import LocalStack
from tests.e2e.conftest import make_tenant, python_job, wait_job

pytestmark = pytest.mark.e2e


def fetch(url: str, key: str | None = None, bearer: str | None = None) -> str:
    """`key`: the Durable extension's system key, for devhost's Durable HTTP API; `bearer`: aciemu's token."""
    headers = {"x-functions-key": key} if key else {}
    headers |= {"Authorization": f"Bearer {bearer}"} if bearer else {}
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return str(response.read().decode())


def test_no_secret_appears_anywhere_after_a_full_job(stack: LocalStack, admin: BatchClient) -> None:
    client = make_tenant(admin, "secretive")
    secure_value = "hunter2-" + secrets.token_hex(8)
    code = (
        "import os, sys, acibatch_report as r\n"
        "assert os.environ['DB_PASSWORD'].startswith('hunter2-')\n"
        "print('task sees its secure value', flush=True)\n"
        "if os.environ['BATCH_TASK_INDEX'] == '0' and os.environ['BATCH_ATTEMPT'] == '1': sys.exit(3)\n"
        "r.succeeded({'ok': True})\n"
    )
    aci_snapshots: list[str] = []
    stop = threading.Event()
    groups_url = (
        f"{stack.aci_url}/subscriptions/{stack.settings['ACI_SUBSCRIPTION_ID']}/resourceGroups/"
        f"{stack.settings['ACI_RESOURCE_GROUP']}/providers/Microsoft.ContainerInstance/containerGroups"
        "?api-version=2023-05-01"
    )

    def watch_aci() -> None:
        while not stop.is_set():
            aci_snapshots.append(fetch(groups_url, bearer=stack.aci_token))
            time.sleep(0.1)

    watcher = threading.Thread(target=watch_aci, daemon=True)
    watcher.start()
    try:
        client.submit(python_job(code, tasks=3, jobId="hush", secureEnv={"DB_PASSWORD": secure_value}))
        job = wait_job(client, "hush")
    finally:
        stop.set()
        watcher.join()
    assert job["state"] == "Succeeded" and job["tasks"][0]["attempts"] == 2
    assert any("secretive" in snapshot for snapshot in aci_snapshots)  # the watcher saw the groups

    signing_key = stack.settings["BATCH_CALLBACK_SIGNING_KEY"]
    tokens = [
        callback_token(signing_key, task_instance_id("secretive", "hush", task["id"]), attempt)
        for task in job["tasks"]
        for attempt in range(1, task["attempts"] + 1)
    ]
    forbidden = {"secure env value": secure_value, "admin key": stack.admin_key, "tenant key": str(client.key),
                 "signing key": signing_key, "durable system key": stack.durable_key, "aciemu token": stack.aci_token,
                 **{f"token {i}": token for i, token in enumerate(tokens)}}  # fmt: skip

    durable = f"{stack.host_url}/runtime/webhooks/durabletask"
    haystacks: dict[str, str] = {}
    for instance in json.loads(fetch(f"{durable}/instances/?showInput=true", stack.durable_key)):
        iid = urllib.parse.quote(instance["instanceId"], safe="")
        haystacks[f"instance {instance['instanceId']}"] = fetch(
            f"{durable}/instances/{iid}?showHistory=true&showHistoryOutput=true&showInput=true", stack.durable_key
        )
    for entity in ("capacity/region", "tenant/secretive", "jobprogress/secretive:hush"):
        haystacks[f"entity {entity}"] = fetch(f"{durable}/entities/{entity}", stack.durable_key)
    haystacks["job"] = json.dumps(client.job("hush"))
    haystacks["jobs"] = json.dumps(client.jobs())
    haystacks["tenant"] = json.dumps(client.get_tenant("secretive"))
    haystacks["logs"] = json.dumps([client.logs("hush", task["id"]) for task in job["tasks"]])
    haystacks["aci responses"] = "\n".join(aci_snapshots)
    for log in ("devhost.log", "aciemu.log"):
        haystacks[log] = (Path(stack.data_dir) / log).read_text(errors="replace")

    assert len([name for name in haystacks if name.startswith("instance task:secretive")]) == 3
    leaks = [
        f"{secret_name} in {place}"
        for place, text in haystacks.items()
        for secret_name, secret in forbidden.items()
        if secret in text
    ]
    assert leaks == []
