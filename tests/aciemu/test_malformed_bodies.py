"""Nothing a client sends answers 500, and no group stored from a malformed body breaks reads afterwards.

Hypothesis builds container group PUTs whose one field holds an arbitrary JSON value (the fields rendering and
the runtime read: environment variables, registry credentials, command, image, ports, volume mounts, names); the
emulator's aiohttp app answers them in-process on aiohttp's TestServer. Each answer must be a 4xx or a create,
and GET and both lists must still answer 200. A group stored by an older emulator (before those shapes were
validated) must render without its malformed entries, and without echoing a secret held in one, after a restart.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aciemu.client import SUBSCRIPTION
from aciemu.emulator import Emulator
from aciemu.groupstate import Group, Timings
from aciemu.routes import build_app
from aciemu.store import GroupStore, group_key

TOKEN = "malformed-token"
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
RG = "rg-malformed"
VERSION = "?api-version=2023-05-01"
SUB_PATH = f"/subscriptions/{SUBSCRIPTION}"
GROUPS = f"{SUB_PATH}/resourceGroups/{RG}/providers/Microsoft.ContainerInstance/containerGroups"
SUB_LIST = f"{SUB_PATH}/providers/Microsoft.ContainerInstance/containerGroups{VERSION}"
# Keys the schema's objects use, so generated objects are sometimes (nearly) well formed.
KEYS = st.sampled_from(["name", "value", "secureValue", "server", "username", "password", "port", "mountPath"])
SCALARS = st.none() | st.booleans() | st.integers(-5, 70000) | st.floats(allow_nan=False) | st.text(max_size=6)
JSON = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3), max_leaves=8
)
CONTAINER_FIELDS = ["environmentVariables", "command", "image", "ports", "volumeMounts", "resources"]
GROUP_FIELDS = ["imageRegistryCredentials", "volumes", "initContainers", "location", "tags"]


def body_with(where: str, field: str, value: Any) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "main",
        "properties": {
            "image": "python:3", "command": ["true"],
            "environmentVariables": [{"name": "SECRET", "secureValue": "s3cret"}],
            "resources": {"requests": {"cpu": 0.1, "memoryInGB": 0.1}},
        },
    }  # fmt: skip
    body: dict[str, Any] = {
        "location": "westeurope",
        "properties": {"containers": [container], "osType": "Linux", "restartPolicy": "Never"},
    }
    if where == "container":
        container["properties"][field] = value
    elif where == "name":
        container["name"] = value
    else:
        body["properties"][field] = value
    return body


async def call(http: TestClient[Any, Any], method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    async with http.request(method, path, data=data, headers=HEADERS) as response:
        text = await response.text()
        if response.content_type != "application/json":
            return response.status, text  # aiohttp's own answer to an unhandled exception is plain text
        return response.status, json.loads(text) if text else None


async def reads_still_work(http: TestClient[Any, Any]) -> list[dict[str, Any]]:
    """GET of every listed group, and both lists, answer 200; the groups as listed."""
    status, page = await call(http, "GET", GROUPS + VERSION)
    assert status == 200, page
    status, everywhere = await call(http, "GET", SUB_LIST)
    assert status == 200, everywhere
    for listed in page["value"]:
        status, got = await call(http, "GET", f"{GROUPS}/{listed['name']}{VERSION}")
        assert status == 200, got
    groups: list[dict[str, Any]] = page["value"]
    return groups


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    where_field=st.sampled_from(
        [("container", f) for f in CONTAINER_FIELDS] + [("group", f) for f in GROUP_FIELDS] + [("name", "name")]
    ),
    value=JSON,
)
async def test_a_malformed_container_body_is_4xx_and_reads_go_on(
    tmp_path_factory: Any, where_field: tuple[str, str], value: Any
) -> None:
    emulator = Emulator(tmp_path_factory.mktemp("aciemu"), use_bwrap=False, timings=Timings(provisioning_seconds=0.02))
    async with TestClient(TestServer(build_app(emulator, TOKEN))) as http:
        status, answer = await call(http, "PUT", f"{GROUPS}/fuzzed{VERSION}", body_with(*where_field, value))
        assert status in (201, 400), answer  # created, or refused with what to fix
        if status == 400:
            assert answer["error"]["code"] and answer["error"]["message"]
        for listed in await reads_still_work(http):
            assert "s3cret" not in json.dumps(listed)  # write-only, whatever shape the rest has
        status, _ = await call(http, "DELETE", f"{GROUPS}/fuzzed{VERSION}")
        assert status in (200, 204)


STORED_BY_OLDER_CODE = [
    {"environmentVariables": {"name": "A", "secureValue": "s3cret"}},
    {"environmentVariables": ["A=1", {"name": "B", "secureValue": "s3cret"}, None]},
    {"environmentVariables": "SECRET=s3cret"},
]


async def test_groups_stored_malformed_by_older_code_still_render_after_a_restart(tmp_path: Path) -> None:
    store = GroupStore(tmp_path)
    for index, (cprops, credentials) in enumerate(
        itertools.product(STORED_BY_OLDER_CODE, [{"server": "r", "password": "pw"}, ["r"], "r"])
    ):
        body = body_with("group", "imageRegistryCredentials", credentials)
        body["properties"]["containers"][0]["properties"].update(cprops)
        body["properties"]["containers"].append(["not", "a", "container"])
        name = f"old-{index}"
        group = Group(key=group_key(SUBSCRIPTION, RG, name), subscription=SUBSCRIPTION, resource_group=RG,
                      name=name, body=body)  # fmt: skip
        group.provisioning_state, group.state = "Succeeded", "Succeeded"
        store.put(group)
    emulator = Emulator(tmp_path, use_bwrap=False, timings=Timings(provisioning_seconds=0.02))
    async with TestClient(TestServer(build_app(emulator, TOKEN))) as http:  # starting loads the stored groups
        groups = await reads_still_work(http)
        assert len(groups) == len(STORED_BY_OLDER_CODE) * 3
        for listed in groups:
            text = json.dumps(listed)
            assert "s3cret" not in text and '"pw"' not in text
            props = listed["properties"]
            assert all(isinstance(item, dict) for item in props["imageRegistryCredentials"])
            container = props["containers"][0]["properties"]
            assert all(isinstance(item, dict) for item in container["environmentVariables"])
            assert len(props["containers"]) == 1  # the entry that was not a container is left out
        status, _ = await call(http, "DELETE", f"{GROUPS}/old-0{VERSION}")
        assert status == 200
