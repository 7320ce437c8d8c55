"""aciemu's multi-container groups, init containers and emptyDir/secret volumes, driven by the unmodified ACI SDK
over real HTTP (the emulator runs as a subprocess, its containers under bubblewrap)."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.containerinstance import ContainerInstanceManagementClient
from azure.mgmt.containerinstance.models import (
    AzureFileVolume,
    Container,
    ContainerGroup,
    GitRepoVolume,
    InitContainerDefinition,
    ResourceRequests,
    ResourceRequirements,
    Volume,
    VolumeMount,
)

from aciemu.client import SUBSCRIPTION, emulator_client
from aciemu.groupstate import Group
from aciemu.launcher import AciEmulatorProcess
from aciemu.sandbox import bwrap_path
from aciemu.store import GroupStore, group_key
from tests.aciemu.test_aciemu import wait_for

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(bwrap_path() is None, reason="volumes need bubblewrap (bwrap) to be mounted in containers"),
]
RG = "rg-multi"
SERIALIZER = emulator_client("http://127.0.0.1:9", "unused")._serialize  # the SDK's own wire form
SHARED = Volume(name="shared", empty_dir={})


def sh(script: str) -> list[str]:
    return ["/bin/sh", "-c", script]


def container(name: str, script: str, *mounts: VolumeMount, cpu: float = 0.25) -> Container:
    return Container(
        name=name, image="busybox", command=sh(script), volume_mounts=list(mounts) or None,
        resources=ResourceRequirements(requests=ResourceRequests(cpu=cpu, memory_in_gb=0.25)),
    )  # fmt: skip


def init(name: str, script: str, *mounts: VolumeMount) -> InitContainerDefinition:
    return InitContainerDefinition(name=name, image="busybox", command=sh(script), volume_mounts=list(mounts) or None)


def group(*containers: Container, inits: tuple[InitContainerDefinition, ...] = (), volumes: tuple[Volume, ...] = (),
          policy: str = "Never") -> ContainerGroup:  # fmt: skip
    return ContainerGroup(
        location="westeurope", os_type="Linux", restart_policy=policy, containers=list(containers),
        init_containers=list(inits) or None, volumes=list(volumes) or None,
    )  # fmt: skip


def settled(client: ContainerInstanceManagementClient, name: str) -> Any:
    """The group once its instance view is final (Succeeded or Failed)."""
    return wait_for(lambda: (g := client.container_groups.get(RG, name)).instance_view.state in {"Succeeded", "Failed"}
                    and g)  # fmt: skip


def log(client: ContainerInstanceManagementClient, name: str, container_name: str) -> str:
    return str(client.containers.list_logs(RG, name, container_name).content)


def views(found: Any) -> dict[str, Any]:
    return {c.name: c.instance_view for c in [*found.init_containers, *found.containers]}


def state_of(found: Any, name: str) -> str | None:
    view = views(found)[name]
    return view.current_state.state if view is not None and view.current_state is not None else None


def files_containing(root: Path, needles: list[bytes]) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and any(n in p.read_bytes() for n in needles)]


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AciEmulatorProcess]:
    data = tmp_path_factory.mktemp("aciemu-multi")
    args = ["--max-cores", "8", "--restart-backoff-scale", "0.1"]
    with AciEmulatorProcess(data / "state", args=args, log_path=data / "state" / "aciemu.log") as process:
        yield process


@pytest.fixture(scope="module")
def client(emulator: AciEmulatorProcess) -> ContainerInstanceManagementClient:
    return emulator_client(emulator.url, emulator.token)


def test_an_init_container_and_two_containers_share_one_empty_dir(client: ContainerInstanceManagementClient) -> None:
    def at(path: str) -> VolumeMount:
        return VolumeMount(name="shared", mount_path=path)

    body = group(
        container("one", "cat /data/in.txt; echo from-one > /data/out.txt", at("/data")),
        # Mounted at another path: one folder per group, wherever each container mounts it.
        container("two", "while [ ! -f /x/out.txt ]; do sleep 0.05; done; cat /x/out.txt", at("/x")),
        inits=(init("stage", "sleep 0.3; echo hello-from-init > /in/in.txt", at("/in")),),
        volumes=(SHARED,),
    )
    client.container_groups.begin_create_or_update(RG, "share", body)
    done = settled(client, "share")
    assert done.instance_view.state == "Succeeded"
    assert log(client, "share", "one").strip() == "hello-from-init"
    assert log(client, "share", "two").strip() == "from-one"
    state = views(done)
    # Ordering: the containers started only after the init container had ended.
    assert state["stage"].current_state.finish_time <= state["one"].current_state.start_time
    assert state["stage"].current_state.finish_time <= state["two"].current_state.start_time
    assert [state[n].current_state.exit_code for n in ("stage", "one", "two")] == [0, 0, 0]
    client.container_groups.begin_delete(RG, "share").result()


def test_containers_wait_while_init_containers_run(client: ContainerInstanceManagementClient) -> None:
    body = group(container("main", "echo started"), inits=(init("first", "sleep 1"), init("second", "sleep 0.2")))
    client.container_groups.begin_create_or_update(RG, "order", body)
    during = wait_for(lambda: state_of(g := client.container_groups.get(RG, "order"), "first") == "Running" and g)
    assert during.instance_view.state == "Pending"  # "waiting to initialize (finish running init containers)"
    assert state_of(during, "main") == "Waiting"
    assert state_of(during, "second") is None  # not started yet
    done = settled(client, "order")
    state = views(done)
    assert state["first"].current_state.finish_time <= state["second"].current_state.start_time
    assert state["second"].current_state.finish_time <= state["main"].current_state.start_time
    client.container_groups.begin_delete(RG, "order").result()


def test_the_group_state_comes_from_all_its_containers(client: ContainerInstanceManagementClient) -> None:
    client.container_groups.begin_create_or_update(RG, "mixed", group(container("fails", "exit 3"),
                                                                         container("slow", "sleep 1.5")))  # fmt: skip
    running = wait_for(lambda: state_of(g := client.container_groups.get(RG, "mixed"), "fails") == "Terminated" and g)
    assert running.instance_view.state == "Running"  # one container has ended, the other still runs
    done = settled(client, "mixed")
    assert done.instance_view.state == "Failed"  # restart policy Never, and one container exited non-zero
    assert {n: v.current_state.exit_code for n, v in views(done).items()} == {"fails": 3, "slow": 0}
    client.container_groups.begin_delete(RG, "mixed").result()


def test_a_failing_init_container_under_never_fails_the_group_and_nothing_else_starts(
    client: ContainerInstanceManagementClient,
) -> None:
    body = group(container("main", "echo never"), inits=(init("setup", "exit 4"),))
    client.container_groups.begin_create_or_update(RG, "badinit", body)
    done = wait_for(lambda: (g := client.container_groups.get(RG, "badinit")).instance_view.state == "Failed" and g)
    state = views(done)
    assert state["setup"].current_state.exit_code == 4 and state["setup"].restart_count == 0
    assert state["main"].current_state.state == "Waiting"  # never started
    with pytest.raises(HttpResponseError) as missing:
        log(client, "badinit", "main")
    assert missing.value.error.code == "ContainerLogNotAvailable"
    client.container_groups.begin_delete(RG, "badinit").result()


def test_a_failing_init_container_is_restarted_under_on_failure(client: ContainerInstanceManagementClient) -> None:
    # The emptyDir survives the init container's restart (a crash is not a new deployment): the second run succeeds.
    script = "if [ -f /v/tried ]; then exit 0; fi; touch /v/tried; exit 1"
    flaky = init("flaky", script, VolumeMount(name="shared", mount_path="/v"))
    main = container("main", "ls /v", VolumeMount(name="shared", mount_path="/v"))
    body = group(main, inits=(flaky,), volumes=(SHARED,), policy="OnFailure")
    client.container_groups.begin_create_or_update(RG, "retryinit", body)
    done = settled(client, "retryinit")
    state = views(done)
    assert done.instance_view.state == "Succeeded"
    assert state["flaky"].restart_count == 1 and state["flaky"].current_state.exit_code == 0
    assert "BackOff" in [e.name for e in state["flaky"].events]
    assert log(client, "retryinit", "main").split() == ["tried"]
    client.container_groups.begin_delete(RG, "retryinit").result()


def test_a_secret_volume_is_readable_only_where_mounted_and_never_stored(
    client: ContainerInstanceManagementClient, emulator: AciEmulatorProcess
) -> None:
    value = f"sas-sig-{secrets.token_hex(16)}"
    encoded = base64.b64encode(value.encode()).decode()
    reader = container(
        "reader",
        "sha256sum /sec/manifest.json; stat -c %a /sec/manifest.json;"
        " (echo x > /sec/manifest.json) 2>/dev/null && echo writable || echo read-only;"
        " (touch /sec/new) 2>/dev/null && echo dir-writable || echo dir-read-only",
        VolumeMount(name="secrets", mount_path="/sec", read_only=True),
    )
    other = container("other", "test -e /sec && echo visible || echo absent; grep -rs sas-sig- /home /tmp /sec || true")
    body = group(reader, other, volumes=(Volume(name="secrets", secret={"manifest.json": encoded}),))
    client.container_groups.begin_create_or_update(RG, "secret", body)
    done = settled(client, "secret")
    assert done.instance_view.state == "Succeeded"
    digest = hashlib.sha256(value.encode()).hexdigest()  # the log is the tenant's: it gets a digest, not the value
    assert log(client, "secret", "reader").split() == [
        digest,
        "/sec/manifest.json",
        "400",
        "read-only",
        "dir-read-only",
    ]
    assert log(client, "secret", "other").strip() == "absent"
    assert done.volumes[0].secret == {}  # write-only, as ARM returns it
    needles = [value.encode(), encoded.encode()]
    assert files_containing(emulator.data_dir, needles) == []
    client.container_groups.begin_delete(RG, "secret").result()
    assert files_containing(emulator.data_dir, needles) == []


def test_quota_counts_the_sum_of_the_containers_requests(client: ContainerInstanceManagementClient) -> None:
    body = group(container("a", "sleep 30", cpu=1.5), container("b", "sleep 30", cpu=1.0), inits=(init("i", "true"),))
    client.container_groups.begin_create_or_update(RG, "cores", body).result()
    big = group(*(container(f"c{i}", "true", cpu=2.0) for i in range(3)))
    with pytest.raises(HttpResponseError) as refused:
        client.container_groups.begin_create_or_update(RG, "toobig", big)
    assert refused.value.error.code == "ContainerGroupQuotaReached"
    assert "Usage: '2.5' Requested: '6'" in refused.value.error.message  # init containers hold no resources
    client.container_groups.begin_delete(RG, "cores").result()


@pytest.mark.parametrize(
    ("volumes", "mounts", "code"),
    [
        ([SHARED], [VolumeMount(name="other", mount_path="/x")], "VolumeMountVolumeNotFound"),
        ([SHARED], [VolumeMount(name="shared", mount_path="rel")], "InvalidVolumeMountPath"),
        ([SHARED], [VolumeMount(name="shared", mount_path="/a/../etc")], "InvalidVolumeMountPath"),
        ([SHARED], [VolumeMount(name="shared", mount_path="/usr/lib/x")], "UnsupportedVolumeMountPath"),
        ([SHARED], [VolumeMount(name="shared", mount_path="/a"), VolumeMount(name="shared", mount_path="/a/")],
         "DuplicateVolumeMountPath"),
        ([Volume(name="v", empty_dir={})], [], "InvalidVolumeName"),
        ([Volume(name="two--hyphens", empty_dir={})], [], "InvalidVolumeName"),
        ([SHARED, SHARED], [], "DuplicateVolumeName"),
        ([Volume(name="shared", empty_dir={}, secret={"a": "YQ=="})], [], "InvalidVolume"),
        ([Volume(name="shared", secret={"a": "not base64!"})], [], "InvalidSecretVolume"),
        ([Volume(name="shared", secret={"../a": "YQ=="})], [], "InvalidSecretVolume"),
        ([Volume(name="share", azure_file=AzureFileVolume(share_name="s", storage_account_name="a"))], [],
         "UnsupportedVolumeType"),
        ([Volume(name="repos", git_repo=GitRepoVolume(repository="https://x/y.git"))], [], "UnsupportedVolumeType"),
        ([Volume(name=f"vol{i:02d}", empty_dir={}) for i in range(21)], [], "VolumeCountExceedsLimit"),
    ],
)  # fmt: skip
def test_bad_volumes_are_refused_at_put(
    client: ContainerInstanceManagementClient, volumes: list[Volume], mounts: list[VolumeMount], code: str
) -> None:
    body = group(container("main", "true", *mounts), volumes=tuple(volumes))
    with pytest.raises(HttpResponseError) as refused:
        client.container_groups.begin_create_or_update(RG, "badvol", body)
    assert refused.value.status_code == 400 and refused.value.error.code == code


def test_after_an_emulator_restart_a_group_with_a_secret_volume_fails_safely(tmp_path: Path) -> None:
    value = f"sas-sig-{secrets.token_hex(16)}"
    encoded = base64.b64encode(value.encode()).decode()
    needles = [value.encode(), encoded.encode()]
    volume = Volume(name="secrets", secret={"token": encoded})
    body = group(container("main", "sleep 60", VolumeMount(name="secrets", mount_path="/sec")), volumes=(volume,))
    with AciEmulatorProcess(tmp_path / "state", log_path=tmp_path / "first.log") as first:
        client = emulator_client(first.url, first.token)
        client.container_groups.begin_create_or_update(RG, "survivor", body).result()
        token = first.token
    with AciEmulatorProcess(tmp_path / "state", log_path=tmp_path / "second.log") as second:
        client = emulator_client(second.url, token)
        found = client.container_groups.get(RG, "survivor")
        main = found.containers[0].instance_view
        assert found.instance_view.state == "Failed"
        assert (main.current_state.state, main.current_state.exit_code) == ("Terminated", 7147)
        mount_events = [e for e in found.instance_view.events if e.name == "FailedMount"]
        assert mount_events and "secret volume 'secrets'" in mount_events[0].message
        time.sleep(0.3)  # nothing restarts it
        assert client.container_groups.get(RG, "survivor").containers[0].instance_view.restart_count == 0
    assert files_containing(tmp_path, needles) == []


def test_without_bubblewrap_a_group_that_mounts_volumes_fails_with_a_reason(tmp_path: Path) -> None:
    with AciEmulatorProcess(tmp_path / "state", args=["--no-bwrap"], log_path=tmp_path / "aciemu.log") as process:
        client = emulator_client(process.url, process.token)
        body = group(container("main", "true", VolumeMount(name="shared", mount_path="/data")), volumes=(SHARED,))
        client.container_groups.begin_create_or_update(RG, "nobwrap", body)
        found = wait_for(lambda: (g := client.container_groups.get(RG, "nobwrap")).provisioning_state == "Failed" and g)
        assert found.instance_view.state == "Failed"
        [event] = [e for e in found.instance_view.events if e.name == "FailedMount"]
        assert "without bubblewrap" in event.message and "'/data'" in event.message
        # A group without volumes still runs as before.
        client.container_groups.begin_create_or_update(RG, "plain", group(container("main", "echo ok"))).result()
        assert wait_for(lambda: client.containers.list_logs(RG, "plain", "main").content).strip() == "ok"


def test_stop_start_and_restart_act_on_every_container_and_empty_the_empty_dir(
    client: ContainerInstanceManagementClient,
) -> None:
    # "If you stop a container group, the emptyDir volume isn't persisted" (ACI's emptyDir article); a group restart
    # is a new run too, so aciemu empties it then as well (ACI promises nothing of it across one).
    script = "if [ -f /d/marker ]; then echo kept; else echo fresh; fi; touch /d/marker; sleep 30"
    body = group(container("a", script, VolumeMount(name="shared", mount_path="/d")), container("b", "sleep 30"),
                 volumes=(SHARED,))  # fmt: skip
    client.container_groups.begin_create_or_update(RG, "cycle", body).result()

    def lines() -> list[str]:
        return log(client, "cycle", "a").split()

    wait_for(lambda: lines() == ["fresh"])
    client.container_groups.stop(RG, "cycle")
    stopped = client.container_groups.get(RG, "cycle")
    assert stopped.instance_view.state == "Stopped"
    assert {n: v.current_state.state for n, v in views(stopped).items()} == {"a": "Terminated", "b": "Terminated"}
    client.container_groups.begin_start(RG, "cycle").result()
    wait_for(lambda: lines() == ["fresh", "fresh"])
    client.container_groups.begin_restart(RG, "cycle").result()
    wait_for(lambda: lines() == ["fresh", "fresh", "fresh"])
    restarted = wait_for(lambda: (g := client.container_groups.get(RG, "cycle")).instance_view.state == "Running" and g)
    assert {n: v.restart_count for n, v in views(restarted).items()} == {"a": 1, "b": 1}
    client.container_groups.begin_delete(RG, "cycle").result()


def test_secret_values_an_older_emulator_stored_are_moved_out_of_the_group_file(tmp_path: Path) -> None:
    value = f"sas-sig-{secrets.token_hex(16)}"
    encoded = base64.b64encode(value.encode()).decode()
    needles = [value.encode(), encoded.encode()]
    volume = Volume(name="secrets", secret={"token": encoded})
    body = group(
        container("main", "sha256sum /sec/token", VolumeMount(name="secrets", mount_path="/sec")), volumes=(volume,)
    )
    wire = json.loads(json.dumps(SERIALIZER.body(body, "ContainerGroup")))
    # What an emulator before secret volumes left in its data folder: the body as PUT, values included.
    store = GroupStore(tmp_path / "state")
    store.put(Group(key=group_key(SUBSCRIPTION, RG, "legacy"), subscription=SUBSCRIPTION, resource_group=RG,
                    name="legacy", body=wire, provisioning_state="Succeeded", state="Succeeded"))  # fmt: skip
    assert files_containing(tmp_path, needles) != []
    with AciEmulatorProcess(tmp_path / "state", log_path=tmp_path / "aciemu.log") as emulator:
        client = emulator_client(emulator.url, emulator.token)
        assert files_containing(tmp_path, needles) == []
        assert client.container_groups.get(RG, "legacy").volumes[0].secret == {}
        client.container_groups.begin_start(RG, "legacy").result()  # the values, now in memory, still mount
        digest = hashlib.sha256(value.encode()).hexdigest()
        assert wait_for(lambda: log(client, "legacy", "main")).split() == [digest, "/sec/token"]
