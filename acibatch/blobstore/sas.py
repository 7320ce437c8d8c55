"""Short-lived, least-privilege SAS for one task attempt, signed with the account key or a user delegation key.

Each purpose gets only what it needs (Blob REST "Create a service SAS", permissions per operation):
- inputs: read + list on the tenant's container (container-form resource files list, then read);
- logs: read + create + add + write on exactly the attempt's two append blobs (Put Blob creates, Append Block
  adds; read for Get Blob Properties, the length a restarted sidecar resumes at);
- result: create + write on exactly the attempt's result.json;
- default outputs: create + write on the tenant's container (Put Blob / Put Block / Put Block List).
Every SAS is scoped to one tenant's container, so a task never holds a credential for another tenant's data.
Minted only inside activities; the URLs go straight into the ACI request's secret volume and nowhere else.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Protocol
from urllib.parse import quote, urlsplit

from azure.storage.blob import (
    BlobSasPermissions,
    ContainerSasPermissions,
    UserDelegationKey,
    generate_blob_sas,
    generate_container_sas,
)

from acibatch.blobstore import layout
from acibatch.blobstore.layout import LogStream

# A container's clock may run behind ours: a SAS starting "now" could be refused as not yet valid.
CLOCK_SKEW = timedelta(minutes=5)
# Time after the attempt's timeout for the sidecar to flush logs and upload outputs.
UPLOAD_GRACE = timedelta(hours=1)
# A user delegation key (and so any SAS it signs) lasts at most 7 days (Get User Delegation Key).
MAX_LIFETIME = timedelta(days=7)
# A cached delegation key is replaced this long before it expires.
KEY_REFRESH_MARGIN = timedelta(minutes=10)


class Purpose(StrEnum):
    INPUTS = "inputs"
    LOGS = "logs"
    RESULT = "result"
    OUTPUTS = "outputs"


# Service SAS permission strings, by purpose (the SDK's permission classes name them).
CONTAINER_PERMISSIONS = {
    Purpose.INPUTS: ContainerSasPermissions(read=True, list=True),
    Purpose.OUTPUTS: ContainerSasPermissions(create=True, write=True),
}
BLOB_PERMISSIONS = {
    Purpose.LOGS: BlobSasPermissions(read=True, create=True, add=True, write=True),
    Purpose.RESULT: BlobSasPermissions(create=True, write=True),
}


class StorageConfigError(ValueError):
    """The storage endpoint cannot be used for task SAS (the message names the setting, never a key)."""


@dataclass(frozen=True)
class SasWindow:
    start: datetime
    expiry: datetime

    @classmethod
    def for_attempt(cls, timeout_seconds: float, now: datetime | None = None) -> SasWindow:
        moment = now or datetime.now(UTC)
        lifetime = min(timedelta(seconds=max(timeout_seconds, 0)) + UPLOAD_GRACE, MAX_LIFETIME)
        return cls(moment - CLOCK_SKEW, moment + lifetime)


def is_loopback_host(host: str | None) -> bool:
    if host is None:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def sas_protocol(endpoint: str) -> str | None:
    """`https` for a real account; None (http allowed) only for an emulator on loopback, which serves http."""
    parts = urlsplit(endpoint)
    if parts.scheme == "https":
        return "https"
    if parts.scheme == "http" and is_loopback_host(parts.hostname):
        return None
    raise StorageConfigError(
        f"the blob endpoint {parts.scheme}://{parts.hostname} is not https: plain http is allowed only for a local "
        "emulator on loopback (check the BlobEndpoint of BATCH_STORAGE_CONNECTION_STRING)"
    )


class Signer(Protocol):
    """Signs service SAS for one storage account."""

    account_name: str
    endpoint: str  # the blob service URL, without a trailing '/'

    def container_sas(self, container: str, permission: ContainerSasPermissions, window: SasWindow) -> str: ...

    def blob_sas(self, container: str, blob: str, permission: BlobSasPermissions, window: SasWindow) -> str: ...


class AccountKeySigner:
    """SAS signed with the account key (Azurite, or a key-based account)."""

    def __init__(self, account_name: str, account_key: str, endpoint: str) -> None:
        self.account_name, self.endpoint = account_name, endpoint.rstrip("/")
        self._key = account_key
        self._protocol = sas_protocol(self.endpoint)

    def __repr__(self) -> str:  # the key stays out of any log or traceback
        return f"AccountKeySigner({self.account_name!r}, {self.endpoint!r})"

    def container_sas(self, container: str, permission: ContainerSasPermissions, window: SasWindow) -> str:
        return generate_container_sas(
            self.account_name, container, account_key=self._key, permission=permission,
            start=window.start, expiry=window.expiry, protocol=self._protocol,
        )  # fmt: skip

    def blob_sas(self, container: str, blob: str, permission: BlobSasPermissions, window: SasWindow) -> str:
        return generate_blob_sas(
            self.account_name, container, blob, account_key=self._key, permission=permission,
            start=window.start, expiry=window.expiry, protocol=self._protocol,
        )  # fmt: skip


KeySource = Callable[[datetime, datetime], UserDelegationKey]


class DelegationSigner:
    """User delegation SAS (Azure with managed identity): signed with a key the account hands out to the app's
    identity, so no account key exists anywhere. One key is cached and shared until shortly before it expires;
    a SAS never outlives the key that signed it."""

    def __init__(self, account_name: str, endpoint: str, get_key: KeySource) -> None:
        self.account_name, self.endpoint = account_name, endpoint.rstrip("/")
        self._get_key = get_key  # BlobServiceClient.get_user_delegation_key, with the app's credential
        self._protocol = sas_protocol(self.endpoint)
        self._lock = threading.Lock()
        self._key: UserDelegationKey | None = None
        self._key_expiry = datetime.min.replace(tzinfo=UTC)

    def key_for(self, window: SasWindow, now: datetime | None = None) -> tuple[UserDelegationKey, SasWindow]:
        """A key valid for the window (the window cut to the key's expiry when the key cannot cover it)."""
        moment = now or datetime.now(UTC)
        with self._lock:
            if self._key is None or self._key_expiry - KEY_REFRESH_MARGIN < min(window.expiry, moment + MAX_LIFETIME):
                expiry = moment + MAX_LIFETIME
                self._key = self._get_key(moment - CLOCK_SKEW, expiry)
                self._key_expiry = expiry
            key, key_expiry = self._key, self._key_expiry
        return key, SasWindow(window.start, min(window.expiry, key_expiry))

    def container_sas(self, container: str, permission: ContainerSasPermissions, window: SasWindow) -> str:
        key, window = self.key_for(window)
        return generate_container_sas(
            self.account_name, container, user_delegation_key=key, permission=permission,
            start=window.start, expiry=window.expiry, protocol=self._protocol,
        )  # fmt: skip

    def blob_sas(self, container: str, blob: str, permission: BlobSasPermissions, window: SasWindow) -> str:
        key, window = self.key_for(window)
        return generate_blob_sas(
            self.account_name, container, blob, user_delegation_key=key, permission=permission,
            start=window.start, expiry=window.expiry, protocol=self._protocol,
        )  # fmt: skip


def container_url(signer: Signer, container: str, sas: str | None = None) -> str:
    base = f"{signer.endpoint}/{container}"
    return f"{base}?{sas}" if sas else base


def blob_url(signer: Signer, container: str, blob: str, sas: str | None = None) -> str:
    base = f"{signer.endpoint}/{container}/{quote(blob, safe='/')}"
    return f"{base}?{sas}" if sas else base


@dataclass(frozen=True)
class AttemptAccess:
    """The SAS URLs one attempt's agent gets (secret: only ever written into the ACI request's secret volume)."""

    logs: dict[LogStream, str]
    result: str
    inputs: str | None  # the tenant container, read + list; None when the task has no container-form input
    outputs: str | None  # the tenant container, create + write; None when no output goes to the default place

    def __repr__(self) -> str:
        return "AttemptAccess(<SAS URLs withheld>)"


def attempt_access(
    signer: Signer,
    container: str,
    job_id: str,
    task_id: str,
    attempt: int,
    window: SasWindow,
    *,
    inputs: bool,
    outputs: bool,
) -> AttemptAccess:
    def blob(name: str, purpose: Purpose) -> str:
        return blob_url(signer, container, name, signer.blob_sas(container, name, BLOB_PERMISSIONS[purpose], window))

    def whole(purpose: Purpose) -> str:
        return container_url(signer, container, signer.container_sas(container, CONTAINER_PERMISSIONS[purpose], window))

    return AttemptAccess(
        logs={stream: blob(layout.log_blob(job_id, task_id, attempt, stream), Purpose.LOGS) for stream in LogStream},
        result=blob(layout.result_blob(job_id, task_id, attempt), Purpose.RESULT),
        inputs=whole(Purpose.INPUTS) if inputs else None,
        outputs=whole(Purpose.OUTPUTS) if outputs else None,
    )
