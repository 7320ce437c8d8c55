"""Reads and writes of the app itself on blob storage (sync: activities and HTTP functions run in threads).

One `BlobServiceClient` per process and configuration, like the ARM client: it keeps its connections and, in
Azure, its managed identity token. Failures come out as `BlobStoreError` subclasses that say what happened
without quoting a URL, SAS or key.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import IO, Any, TypeVar

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.storage.blob import BlobServiceClient, ContainerClient

from acibatch.blobstore import layout
from acibatch.blobstore.layout import LogStream
from acibatch.blobstore.sas import AccountKeySigner, DelegationSigner, Signer
from acibatch.settings import StorageSettings

# The most one log read returns: the API pages through bigger logs.
MAX_LOG_READ = 4 * 1024 * 1024
RANGE_NOT_SATISFIABLE = 416
CONFLICT = 409
_Result = TypeVar("_Result")


class BlobStoreError(Exception):
    """A storage failure; the message is safe to show (no URL, SAS or key). `status` and `code` are the
    service's answer, when there was one."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code = status, code


class BlobNotFound(BlobStoreError):
    pass


class BlobForbidden(BlobStoreError):
    """The app's identity may not do this (a missing role assignment in Azure, a wrong key locally)."""


class BlobTransient(BlobStoreError):
    """The service could not be reached or answered 5xx/429: trying again later may work."""


class StorageOff(BlobStoreError):
    """No storage settings: file features are unavailable."""


def _safe(operation: str, call: Callable[[], _Result]) -> _Result:
    """Run one storage call, turning the SDK's exceptions into ours (raised `from None`: the SDK's text may quote
    the request)."""
    try:
        return call()
    except HttpResponseError as exc:
        status, code = exc.status_code, _code(exc)
        if isinstance(exc, ResourceNotFoundError) or status == 404:
            raise BlobNotFound(f"{operation}: not found ({code})", status, code) from None
        if isinstance(exc, ClientAuthenticationError) or status == 403:
            raise BlobForbidden(f"{operation}: refused by storage ({code})", status, code) from None
        if status is not None and (status == 429 or status >= 500):
            raise BlobTransient(f"{operation}: storage answered {status} ({code}); try again", status, code) from None
        raise BlobStoreError(f"{operation}: storage answered {status} ({code})", status, code) from None
    except (ServiceRequestError, ServiceResponseError) as exc:
        raise BlobTransient(f"{operation}: storage unreachable ({type(exc).__name__}); try again") from None


def _code(exc: HttpResponseError) -> str:
    # The error code only: the exception's text may quote the request.
    return str(getattr(exc, "error_code", None) or exc.reason or "no error code")


def safe_relative_path(path: str) -> str:
    """A blob path below a prefix: relative, no '..' or empty segment (raises ValueError saying what to fix)."""
    if not path or path.startswith("/") or "\\" in path:
        raise ValueError(f"{path!r} must be a relative path with '/' separators")
    if any(part in {"", ".", ".."} for part in path.split("/")):
        raise ValueError(f"{path!r} must not contain empty, '.' or '..' segments")
    return posixpath.normpath(path)


@dataclass(frozen=True)
class LogRead:
    data: bytes
    next_offset: int
    exists: bool


@dataclass(frozen=True)
class StoredFile:
    path: str  # relative to the listed prefix
    size: int


class BlobStore:
    """The blob operations the app needs, on one account; tenant containers are `<prefix><tenant>`."""

    def __init__(self, client: BlobServiceClient, signer: Signer, container_prefix: str) -> None:
        self.client, self.signer, self.prefix = client, signer, container_prefix

    def container_name(self, tenant: str) -> str:
        return layout.tenant_container(self.prefix, tenant)

    def _container(self, tenant: str) -> ContainerClient:
        return self.client.get_container_client(self.container_name(tenant))

    def ensure_container(self, tenant: str) -> None:
        """Create the tenant's container if missing; safe to race (two tasks of one tenant start together)."""
        try:
            _safe("create the tenant container", lambda: self._container(tenant).create_container())
        except BlobStoreError as error:
            if error.status != CONFLICT:  # ContainerAlreadyExists (or being deleted, which a retry sorts out)
                raise

    def read_result(self, tenant: str, job_id: str, task_id: str, attempt: int) -> dict[str, Any] | None:
        """The attempt's result.json, or None when the agent wrote none."""
        name = layout.result_blob(job_id, task_id, attempt)
        try:
            raw = _safe(f"read {name}", lambda: self._container(tenant).download_blob(name).readall())
        except BlobNotFound:
            return None
        try:
            result = json.loads(raw)
        except ValueError:
            raise BlobStoreError(f"{name} is not JSON") from None
        if not isinstance(result, dict):
            raise BlobStoreError(f"{name} is not a JSON object")
        return result

    def read_log(
        self, tenant: str, job_id: str, task_id: str, attempt: int, stream: LogStream, offset: int = 0,
        max_bytes: int = MAX_LOG_READ,
    ) -> LogRead:  # fmt: skip
        """Up to `max_bytes` (at most 4 MiB) of the attempt's log from `offset`; `exists` False when no log blob."""
        name = layout.log_blob(job_id, task_id, attempt, stream)
        length = max(1, min(max_bytes, MAX_LOG_READ))
        blob = self._container(tenant).get_blob_client(name)
        try:
            data = _safe(f"read {name}", lambda: blob.download_blob(offset=offset, length=length).readall())
        except BlobNotFound:
            return LogRead(b"", offset, exists=False)
        except BlobStoreError as error:
            # The service answers 416 for a range that starts at or after the end: nothing new yet.
            if error.status == RANGE_NOT_SATISFIABLE:
                return LogRead(b"", offset, exists=True)
            raise
        return LogRead(data, offset + len(data), exists=True)

    def log_sizes(self, tenant: str, job_id: str, task_id: str) -> dict[int, dict[LogStream, int]]:
        """Every attempt's log sizes in bytes, by attempt number."""
        prefix = layout.attempts_prefix(job_id, task_id)
        blobs = _safe("list the task's logs", lambda: list(self._container(tenant).list_blobs(name_starts_with=prefix)))
        sizes: dict[int, dict[LogStream, int]] = {}
        by_name = {stream.blob_name: stream for stream in LogStream}
        for blob in blobs:
            attempt, stream = layout.attempt_of(blob.name, job_id, task_id), by_name.get(blob.name.rsplit("/", 1)[-1])
            if attempt is not None and stream is not None:
                sizes.setdefault(attempt, {})[stream] = int(blob.size)
        return sizes

    def output_chunks(self, tenant: str, job_id: str, task_id: str, name: str) -> tuple[int, Iterator[bytes]]:
        """(size, chunks) of one default-destination output blob of the task; only blobs under its outputs
        prefix are readable this way (ValueError otherwise: the name is the caller's input)."""
        prefix = layout.outputs_prefix(job_id, task_id)
        if not name.startswith(prefix):
            raise ValueError(f"{name!r} is not an output of task {task_id} of job {job_id}")
        safe_relative_path(name)
        downloader = _safe(f"read output {name}", lambda: self._container(tenant).download_blob(name))
        return int(downloader.size), _guarded_chunks(name, downloader.chunks())

    def upload_input(
        self, tenant: str, name: str, path: str, data: bytes | IO[bytes], length: int | None = None
    ) -> str:
        """Store a tenant input file under `inputs/<name>/<path>` (replacing it); returns the blob name."""
        blob_name = layout.input_blob(name, safe_relative_path(path))
        self.ensure_container(tenant)
        _safe(
            f"upload {blob_name}",
            lambda: self._container(tenant).upload_blob(blob_name, data, length=length, overwrite=True),
        )
        return blob_name

    def list_inputs(self, tenant: str, name: str) -> list[StoredFile]:
        prefix = layout.input_prefix(name)
        try:
            blobs = _safe(f"list {prefix}", lambda: list(self._container(tenant).list_blobs(name_starts_with=prefix)))
        except BlobNotFound:  # no container yet: the tenant has uploaded nothing
            return []
        return [StoredFile(blob.name[len(prefix) :], int(blob.size)) for blob in blobs]


def _guarded_chunks(name: str, chunks: Iterator[bytes]) -> Iterator[bytes]:
    while True:
        chunk = _safe(f"read output {name}", lambda: next(chunks, None))
        if chunk is None:
            return
        yield chunk


@cache
def _client_and_signer(storage: StorageSettings) -> tuple[BlobServiceClient, Signer]:
    if storage.connection_string:
        client = BlobServiceClient.from_connection_string(storage.connection_string)
        key = client.credential.account_key  # a shared key credential: settings require AccountKey
        return client, AccountKeySigner(str(client.account_name), key, client.url)
    if storage.account_url:
        from azure.identity import DefaultAzureCredential  # noqa: PLC0415  (Azure only)

        client = BlobServiceClient(storage.account_url, credential=DefaultAzureCredential())
        return client, DelegationSigner(
            str(client.account_name), client.url,
            lambda start, expiry: _safe(
                "get a user delegation key", lambda: client.get_user_delegation_key(start, expiry)
            ),
        )  # fmt: skip
    raise StorageOff("blob storage is not configured: set BATCH_STORAGE_CONNECTION_STRING or BATCH_STORAGE_ACCOUNT_URL")


def blob_store(storage: StorageSettings) -> BlobStore:
    """The process's store for these settings (built once)."""
    client, signer = _client_and_signer(storage)
    return BlobStore(client, signer, storage.container_prefix)
