"""Short-lived, least-privilege SAS for one task attempt, signed with the account key or a user delegation key.

Each purpose gets only what it needs (Blob REST "Create a service SAS", permissions per operation):
- inputs: read + list on the tenant's container (container-form resource files list, then read);
- logs: read + create + add on exactly the attempt's two append blobs (Put Blob of an append blob needs create,
  Append Block add, Get Blob Properties read: the length a restarted sidecar resumes at). No write: with create
  alone the service refuses a Put Blob over an existing blob, so a task cannot replace or truncate its log;
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
from acibatch.policy import UPLOAD_GRACE_SECONDS

# A container's clock may run behind ours: a SAS starting "now" could be refused as not yet valid.
CLOCK_SKEW = timedelta(minutes=5)
# Time after the attempt's timeout for the sidecar to flush logs and upload outputs: the same grace the task
# orchestrator gives the uploads once the command has ended (one constant, so the two never drift apart).
UPLOAD_GRACE = timedelta(seconds=UPLOAD_GRACE_SECONDS)
# How much later than the minting the orchestrator's longest wait may end: it starts the attempt's timeout when it
# hears that the create went through (after the activity's ARM call and the work queue), sees the command's end by a
# poll that may come late, and looks a few throttled times more at the timeout (`orchestrators.task_attempt`:
# LAST_LOOK_RETRIES). Every SAS lasts this much longer, so the uploads never lose their credentials while the
# orchestrator still waits for them.
ORCHESTRATION_SLACK = timedelta(minutes=30)
# Get User Delegation Key refuses an expiry more than 7 days after the request by the service's clock; asking
# for a little less keeps a clock ahead of the service's from failing the request.
KEY_LIFETIME = timedelta(days=7) - timedelta(hours=1)
# No SAS lasts longer than a delegation key can, whichever way it is signed.
MAX_LIFETIME = KEY_LIFETIME
# A cached key that cannot cover a SAS is replaced, unless it was fetched so recently that a new one would cover
# barely more (a SAS as long as a key's whole life then gets the cached key's expiry instead of a fetch per SAS).
KEY_REUSE_MARGIN = timedelta(minutes=10)
# A window's expiry counts from the start of the step the create activity runs in, measured from the attempt's
# creation: every run of the activity within one step mints byte-identical SAS (Durable may run it twice), and a
# create that waited long for capacity still gets its whole timeout.
ANCHOR_STEP = timedelta(minutes=30)


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
    Purpose.LOGS: BlobSasPermissions(read=True, create=True, add=True),
    Purpose.RESULT: BlobSasPermissions(create=True, write=True),
}


class StorageConfigError(ValueError):
    """The storage endpoint cannot be used for task SAS (the message names the setting, never a key)."""


@dataclass(frozen=True)
class SasWindow:
    start: datetime
    expiry: datetime

    @classmethod
    def for_attempt(
        cls, timeout_seconds: float, created_at: int | None = None, now: datetime | None = None
    ) -> SasWindow:
        """The window of an attempt created at `created_at` (epoch seconds; None: now), as the create activity
        mints it `now`. The same inputs within one `ANCHOR_STEP` give the same window, so a re-run of the activity
        signs the same SAS; the window covers the attempt's whole timeout and the upload grace from `now`, and for an
        attempt (`created_at` given) the orchestration's slack too."""
        moment = now or datetime.now(UTC)
        created = moment if created_at is None else datetime.fromtimestamp(created_at, UTC)
        steps = max(moment - created, timedelta(0)) // ANCHOR_STEP
        anchor = created + steps * ANCHOR_STEP
        lifetime = timedelta(seconds=max(timeout_seconds, 0)) + UPLOAD_GRACE
        if created_at is not None:
            # `now` may be anywhere in its step, and the orchestrator starts the timeout a little after `now`
            # (when it hears the create went through), by a clock that may differ from the service's.
            lifetime += ANCHOR_STEP + CLOCK_SKEW + ORCHESTRATION_SLACK
        return cls(created - CLOCK_SKEW, anchor + min(lifetime, MAX_LIFETIME))


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
        """A key valid for the window (the window cut to the key's expiry when no key can cover it).

        The cached key serves every SAS it outlives, so an attempt's SAS (and a re-run of its create activity
        in this process) share one key and come out the same."""
        moment = now or datetime.now(UTC)
        with self._lock:
            fresh_expiry = moment + KEY_LIFETIME
            covers = self._key is not None and self._key_expiry >= window.expiry
            young = self._key_expiry > fresh_expiry - KEY_REUSE_MARGIN
            if not covers and not young:
                self._key = self._get_key(moment - CLOCK_SKEW, fresh_expiry)
                self._key_expiry = fresh_expiry
            key, key_expiry = self._key, self._key_expiry
        assert key is not None
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
