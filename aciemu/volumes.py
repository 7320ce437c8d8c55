"""A container group's volumes: their validation at PUT, the secret values kept out of the stored group, and what
each container mounts where.

ACI's group `volumes` are `emptyDir` (one writable folder the group's containers share), `secret` (files from
base64 values, backed by tmpfs and mounted read-only), `azureFile` and `gitRepo`; a container or init container
mounts them by name in its `volumeMounts` (`name`, `mountPath`, `readOnly`). Rules: the 2023-05-01 schema
(`Volume`, `VolumeMount`), the volume name rule of ACI's troubleshooting article (5-63 lowercase letters, digits
and hyphens, a hyphen neither first nor last nor doubled), the limit of 20 volumes per group (ACI's quota
article), and a secret volume returned as `"secret": {}` (the spec's ContainerGroupsCreateOrUpdate example).
aciemu runs only `emptyDir` and `secret`; the other kinds are refused with a message saying so, never accepted
and ignored.

Secret values never reach the group's stored JSON: `take_secrets` moves them out of the body (which keeps
`"secret": {}`, what ARM returns), and the emulator holds them in memory only.
"""

from __future__ import annotations

import base64
import binascii
import posixpath
import re
from collections.abc import Mapping, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any

from aciemu.arm import ArmError, invalid_content
from aciemu.sandbox import VolumeMount

VOLUME_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?!-)){3,61}[a-z0-9]$")
MAX_VOLUMES = 20
# Where a bind mount would hide or break what the sandbox shows every container (system files, its own /proc).
RESERVED_MOUNT_ROOTS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/dev", "/etc")

# volume name -> file name -> the file's bytes
Secrets = dict[str, dict[str, bytes]]


class VolumeKind(StrEnum):
    EMPTY_DIR = "emptyDir"
    SECRET = "secret"
    AZURE_FILE = "azureFile"
    GIT_REPO = "gitRepo"


EMULATED = frozenset({VolumeKind.EMPTY_DIR, VolumeKind.SECRET})


def kind_of(volume: Mapping[str, Any]) -> VolumeKind | None:
    """The one kind a validated volume has (None for a malformed volume stored by an older emulator)."""
    kinds = [kind for kind in VolumeKind if volume.get(kind.value) is not None]
    return kinds[0] if len(kinds) == 1 else None


def check(props: Mapping[str, Any], containers: Sequence[Mapping[str, Any]]) -> ArmError | None:
    """The group's `volumes` and every container's `volumeMounts` (containers and init containers alike); the
    JSON shapes (lists of objects with string names and paths) have been checked already."""
    volumes = props.get("volumes") or []
    if len(volumes) > MAX_VOLUMES:
        return ArmError(
            400, "VolumeCountExceedsLimit",
            f"The container group has {len(volumes)} volumes; at most {MAX_VOLUMES} are allowed.",
        )  # fmt: skip
    declared: set[str] = set()
    for volume in volumes:
        refused = _check_volume(volume, declared)
        if refused is not None:
            return refused
        declared.add(volume["name"])
    for container in containers:
        refused = _check_mounts(str(container.get("name")), container.get("properties") or {}, declared)
        if refused is not None:
            return refused
    return None


def _check_volume(volume: Mapping[str, Any], declared: set[str]) -> ArmError | None:
    name = volume["name"]
    if not VOLUME_NAME.match(name):
        return ArmError(
            400, "InvalidVolumeName",
            f"The volume name '{name}' is invalid. A volume name must be 5 to 63 characters long, contain only "
            "lowercase letters, numbers and single hyphens, and must not start or end with a hyphen.",
        )  # fmt: skip
    if name in declared:
        return ArmError(400, "DuplicateVolumeName", f"The volume name '{name}' is used by more than one volume.")
    kinds = [kind for kind in VolumeKind if volume.get(kind.value) is not None]
    if len(kinds) != 1:
        return ArmError(
            400, "InvalidVolume",
            f"The volume '{name}' must define exactly one of 'azureFile', 'emptyDir', 'secret' and 'gitRepo'.",
        )  # fmt: skip
    kind = kinds[0]
    if kind not in EMULATED:
        return ArmError(
            400, "UnsupportedVolumeType",
            f"The volume '{name}' is of kind '{kind.value}', which aciemu does not emulate (it runs 'emptyDir' "
            "and 'secret' volumes only). Use an emptyDir or secret volume, or run this group on real ACI.",
        )  # fmt: skip
    if kind is VolumeKind.EMPTY_DIR and not isinstance(volume["emptyDir"], dict):
        return invalid_content(f"The request content was invalid: 'emptyDir' of volume '{name}' must be an object.")
    if kind is VolumeKind.SECRET:
        return _check_secret(name, volume["secret"])
    return None


def _check_secret(name: str, secret: Any) -> ArmError | None:
    if not isinstance(secret, dict) or not all(isinstance(v, str) for v in secret.values()):
        return invalid_content(
            f"The request content was invalid: 'secret' of volume '{name}' must map file names to base64 strings."
        )
    for file_name, value in secret.items():
        if not file_name or "/" in file_name or file_name in {".", ".."}:
            return ArmError(
                400, "InvalidSecretVolume",
                f"The secret volume '{name}' has an invalid file name '{file_name}': give a plain file name.",
            )  # fmt: skip
        if _decode(value) is None:
            return ArmError(
                400, "InvalidSecretVolume",
                f"The value of '{file_name}' in secret volume '{name}' is not valid base64.",
            )  # fmt: skip
    return None


def _check_mounts(container: str, cprops: Mapping[str, Any], declared: set[str]) -> ArmError | None:
    paths: set[str] = set()
    for mount in cprops.get("volumeMounts") or []:
        name, path = mount["name"], mount["mountPath"]
        if name not in declared:
            return ArmError(
                400, "VolumeMountVolumeNotFound",
                f"The volume mount '{name}' of container '{container}' names no volume of the container group: "
                "add the volume to 'volumes' or fix the name.",
            )  # fmt: skip
        if not path.startswith("/") or posixpath.normpath(path) != path.rstrip("/") or path == "/":
            return ArmError(
                400, "InvalidVolumeMountPath",
                f"The mount path '{path}' of volume mount '{name}' in container '{container}' must be an absolute, "
                "normalized path other than '/'.",
            )  # fmt: skip
        if any(path == root or path.startswith(root + "/") for root in RESERVED_MOUNT_ROOTS):
            return ArmError(
                400, "UnsupportedVolumeMountPath",
                f"The mount path '{path}' of volume mount '{name}' in container '{container}' is inside a system "
                f"folder ({', '.join(RESERVED_MOUNT_ROOTS)}), which aciemu's sandbox cannot mount over: choose "
                "another path.",
            )  # fmt: skip
        if path.rstrip("/") in paths:
            return ArmError(
                400, "DuplicateVolumeMountPath",
                f"The mount path '{path}' is used by more than one volume mount of container '{container}'.",
            )  # fmt: skip
        paths.add(path.rstrip("/"))
        if mount.get("readOnly") is not None and not isinstance(mount["readOnly"], bool):
            return invalid_content(
                f"The request content was invalid: 'readOnly' of volume mount '{name}' in container "
                f"'{container}' must be a boolean."
            )
    return None


def _decode(value: str) -> bytes | None:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def take_secrets(body: dict[str, Any]) -> Secrets:
    """Move a body's secret volume values out of it: the body keeps `"secret": {}` (what ARM returns and all the
    group's file on disk will hold); the decoded files are returned, for memory only. Also run on groups an older
    emulator stored with their values, so it tolerates shapes validation would refuse (it drops those)."""
    secrets: Secrets = {}
    props = body.get("properties")
    found = props.get("volumes") if isinstance(props, dict) else None
    for volume in found if isinstance(found, list) else []:
        if not isinstance(volume, dict) or kind_of(volume) is not VolumeKind.SECRET:
            continue
        given = volume["secret"] if isinstance(volume["secret"], dict) else {}
        decoded = {str(name): _decode(value) if isinstance(value, str) else None for name, value in given.items()}
        secrets[str(volume.get("name"))] = {name: data for name, data in decoded.items() if data is not None}
        volume["secret"] = {}
    return secrets


def mounts_for(
    spec: Mapping[str, Any], volumes: Sequence[Mapping[str, Any]], volume_root: Path, secrets: Secrets
) -> tuple[VolumeMount, ...]:
    """What one container mounts: an emptyDir is its group's one folder under `volume_root`, bound read-write
    (unless the mount says readOnly) in every container that mounts it; a secret volume is its files, read-only."""
    by_name = {volume.get("name"): volume for volume in volumes if isinstance(volume, Mapping)}
    mounts: list[VolumeMount] = []
    for mount in (spec.get("properties") or {}).get("volumeMounts") or []:
        volume = by_name.get(mount.get("name"))
        kind = kind_of(volume) if volume is not None else None
        if volume is None or kind is None:
            continue  # stored by an emulator older than these checks
        path = str(mount["mountPath"]).rstrip("/")
        if kind is VolumeKind.EMPTY_DIR:
            mounts.append(VolumeMount(path, bool(mount.get("readOnly")), host_dir=volume_root / str(volume["name"])))
        elif kind is VolumeKind.SECRET:
            mounts.append(VolumeMount(path, True, files=dict(secrets.get(str(volume["name"]), {}))))
    return tuple(mounts)


def mounting(specs: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    """(container, volume, mountPath) for every volume mount of `specs`."""
    return [
        (str(spec.get("name")), str(mount.get("name")), str(mount.get("mountPath")))
        for spec in specs
        for mount in (spec.get("properties") or {}).get("volumeMounts") or []
    ]


def secret_volumes(volumes: Sequence[Mapping[str, Any]]) -> list[str]:
    return [str(v["name"]) for v in volumes if isinstance(v, Mapping) and kind_of(v) is VolumeKind.SECRET]


def empty_dirs(volumes: Sequence[Mapping[str, Any]]) -> list[str]:
    return [str(v["name"]) for v in volumes if isinstance(v, Mapping) and kind_of(v) is VolumeKind.EMPTY_DIR]
