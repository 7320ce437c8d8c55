"""App settings: read and validate every setting in one place; name each missing or invalid one.

An empty value counts as unset (Azure app settings and local.settings.json both produce empty strings).
`current()` caches the settings for the process, like the Functions host fixes them for a worker.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from urllib.parse import urlsplit

from acibatch import armrate
from acibatch.armrate import WindowLimit
from acibatch.callbackevents import CallbackEvents
from acibatch.outbound import OutboundPolicy, parse_allow_list

MIN_SIGNING_KEY_CHARS = 32
# Tenant T's blob container is `<prefix>T`: a container name is 3-63 lowercase letters, digits and single '-'
# starting with a letter or digit (Blob REST "Naming and referencing containers"), and a tenant id is up to 40 of
# those, so the prefix is 2-23 characters.
CONTAINER_PREFIX_RULE = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9]))*-?$")
CONTAINER_PREFIX_CHARS = (2, 23)
AGENT_IMAGE_PATH = "acibatch/agent:1"


class SettingsError(ValueError):
    """One message naming every problem, so an operator fixes them all in one go."""


@dataclass(frozen=True)
class StorageSettings:
    """Where input/output files and whole logs live; both sources None means storage is off."""

    connection_string: str | None = field(default=None, repr=False)  # holds the account key: never printed
    account_url: str | None = None  # Azure: managed identity, user delegation SAS
    container_prefix: str = "acb-"
    agent_image: str | None = None
    agent_cpu: float = 0.1
    agent_memory_gb: float = 0.2
    # How long the sidecar waits for the task container to begin (a big image may pull slowly) before it reports
    # the attempt as never started; each task gets at most its own timeout (`acibatch.agentgroup.start_timeout`).
    agent_start_timeout_seconds: int = 1800

    @property
    def enabled(self) -> bool:
        return bool(self.connection_string or self.account_url)


@dataclass(frozen=True)
class Settings:
    subscription_id: str
    resource_group: str
    location: str
    aci_endpoint: str | None
    aci_endpoint_token: str | None  # the bearer token ACI_ENDPOINT (the emulator) requires
    registry_server: str | None
    registry_username: str | None
    registry_password: str | None
    registry_identity: str | None
    max_groups: int
    max_cores: float
    max_spot_cores: float
    create_limits: tuple[WindowLimit, ...]  # ARM write admission (`acibatch.armrate`)
    delete_limits: tuple[WindowLimit, ...]
    admin_key: str
    callback_signing_key: str
    callback_signing_key_previous: str | None
    callback_base_url: str
    poll_seconds: float
    sweep_schedule: str
    sweep_grace_seconds: float
    max_body_bytes: int
    outbound: OutboundPolicy  # what tenant-aimed requests (notifyUrl) may reach
    # Blob storage for input/output files and whole logs (issue 24); off unless configured. Not in repr: the
    # connection string holds the account key.
    storage: StorageSettings = field(default_factory=StorageSettings, repr=False)
    # Under which event names the tasks of newly submitted jobs wait for their reports (`acibatch.callbackevents.
    # CallbackEvents`): "perAttempt" lets a report be raised with no read, but an older build cannot run such a task,
    # so it is off until this build runs on every worker (docs/callbacks.md, "Turning per-attempt names on").
    callback_events: CallbackEvents = CallbackEvents.SHARED
    # Whether newly submitted jobs start their tasks in waves (BATCH_TASK_WAVES, `acibatch.plan.chunk_window`): an
    # older build that runs an episode of such a chunk starts every task, which the newer one cannot replay, so it is
    # off until this build runs on every worker (docs/versioning.md, "Turning task waves on").
    task_waves: bool = False

    @property
    def storage_enabled(self) -> bool:
        return self.storage.enabled

    @property
    def signing_keys(self) -> tuple[str, ...]:
        previous = (self.callback_signing_key_previous,) if self.callback_signing_key_previous else ()
        return (self.callback_signing_key, *previous)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        source = os.environ if env is None else env
        problems: list[str] = []

        def get(name: str) -> str | None:
            value = source.get(name, "").strip()
            return value or None

        def required(name: str, hint: str) -> str:
            value = get(name)
            if value is None:
                problems.append(f"{name} is not set: {hint}")
                return ""
            return value

        def switch(name: str, when_true: str) -> bool:
            """A true/false setting, false when unset; `when_true` says when to set it true."""
            raw = get(name) or "false"
            if raw.lower() not in {"true", "false"}:
                problems.append(f"{name}={raw!r} is invalid: set true ({when_true}) or false")
            return raw.lower() == "true"

        def number(name: str, default: float, low: float, high: float, integer: bool = False) -> float:
            raw = get(name)
            if raw is None:
                return default
            try:
                value = int(raw) if integer else float(raw)
            except ValueError:
                value = low - 1
            if not low <= value <= high:
                kind = "an integer" if integer else "a number"
                problems.append(f"{name}={raw!r} is invalid: set {kind} from {low:g} to {high:g}")
                return default
            return value

        def url(name: str, value: str | None) -> None:
            if value is not None:
                parts = urlsplit(value)
                if parts.scheme not in {"http", "https"} or not parts.hostname:
                    problems.append(f"{name}={value!r} is invalid: set an absolute http(s) URL")

        subscription = required("ACI_SUBSCRIPTION_ID", "the Azure subscription id that holds the container groups")
        resource_group = required("ACI_RESOURCE_GROUP", "the resource group for the container groups")
        location = required("ACI_LOCATION", "the Azure region for the container groups, e.g. westeurope")
        endpoint = get("ACI_ENDPOINT")
        url("ACI_ENDPOINT", endpoint)
        callback_events_text = get("BATCH_CALLBACK_EVENTS") or CallbackEvents.SHARED
        try:
            callback_events = CallbackEvents(callback_events_text)
        except ValueError:
            callback_events = CallbackEvents.SHARED
            choices = " or ".join(CallbackEvents)
            problems.append(f"BATCH_CALLBACK_EVENTS={callback_events_text!r} is invalid: set {choices}")
        task_waves = switch("BATCH_TASK_WAVES", "once this build runs on every worker")
        endpoint_token = get("ACI_ENDPOINT_TOKEN")
        if endpoint and endpoint_token is None:
            problems.append(
                "ACI_ENDPOINT_TOKEN is not set: it is required with ACI_ENDPOINT (the emulator's token, "
                "in its data folder's `token` file or its --token)"
            )
        admin_key = required("BATCH_ADMIN_KEY", "a long random secret for the admin API")
        signing_key = required(
            "BATCH_CALLBACK_SIGNING_KEY", f"a random secret of at least {MIN_SIGNING_KEY_CHARS} characters"
        )
        previous = get("BATCH_CALLBACK_SIGNING_KEY_PREVIOUS")
        for name, value in (
            ("BATCH_CALLBACK_SIGNING_KEY", signing_key),
            ("BATCH_CALLBACK_SIGNING_KEY_PREVIOUS", previous),
        ):
            if value and len(value) < MIN_SIGNING_KEY_CHARS:
                problems.append(f"{name} is too short: use at least {MIN_SIGNING_KEY_CHARS} random characters")
        base_url = required("BATCH_CALLBACK_BASE_URL", "the public https URL of this app, which containers call back")
        url("BATCH_CALLBACK_BASE_URL", base_url or None)
        username, password = get("ACI_REGISTRY_USERNAME"), get("ACI_REGISTRY_PASSWORD")
        if (username is None) != (password is None):
            problems.append("ACI_REGISTRY_USERNAME and ACI_REGISTRY_PASSWORD must be set together")
        registry = get("ACI_REGISTRY_SERVER")
        identity = get("ACI_REGISTRY_IDENTITY")
        if registry is None and (username or identity):
            problems.append("ACI_REGISTRY_SERVER is not set: it is required with registry credentials or identity")

        allow_http = switch("BATCH_OUTBOUND_ALLOW_HTTP", "local use only")
        try:
            allow = parse_allow_list(get("BATCH_OUTBOUND_ALLOW") or "")
        except ValueError as error:
            problems.append(f"BATCH_OUTBOUND_ALLOW is invalid: {error}")
            allow = ()

        max_cores = number("ACI_MAX_CORES", 100.0, 1, 1_000_000)

        def windows(name: str, default: str) -> tuple[WindowLimit, ...]:
            try:
                return armrate.parse_limits(get(name) or default)
            except ValueError as error:
                problems.append(f"{name} is invalid: {error}")
                return armrate.parse_limits(default)

        storage = _read_storage(get, number, problems, registry)
        create_limits = windows("ACI_CREATE_LIMITS", armrate.DEFAULT_CREATE_LIMITS)
        delete_limits = windows("ACI_DELETE_LIMITS", armrate.DEFAULT_DELETE_LIMITS)

        settings = cls(
            subscription_id=subscription,
            resource_group=resource_group,
            location=location,
            aci_endpoint=endpoint,
            aci_endpoint_token=endpoint_token,
            registry_server=registry,
            registry_username=username,
            registry_password=password,
            registry_identity=identity,
            max_groups=int(number("ACI_MAX_GROUPS", 100, 1, 100_000, integer=True)),
            max_cores=max_cores,
            max_spot_cores=number("ACI_MAX_SPOT_CORES", max_cores, 0, 1_000_000),
            create_limits=create_limits,
            delete_limits=delete_limits,
            admin_key=admin_key,
            callback_signing_key=signing_key,
            callback_signing_key_previous=previous,
            callback_base_url=base_url,
            poll_seconds=number("BATCH_POLL_SECONDS", 30.0, 0.1, 3600),
            sweep_schedule=get("BATCH_SWEEP_SCHEDULE") or "0 */5 * * * *",
            sweep_grace_seconds=number("BATCH_SWEEP_GRACE_SECONDS", 600.0, 0, 7 * 24 * 3600),
            max_body_bytes=int(number("BATCH_MAX_BODY_BYTES", 1024 * 1024, 1024, 64 * 1024 * 1024, integer=True)),
            outbound=OutboundPolicy(allow_http=allow_http, allow=allow),
            storage=storage,
            callback_events=callback_events,
            task_waves=task_waves,
        )
        if problems:
            raise SettingsError("invalid app settings:\n  " + "\n  ".join(problems))
        return settings


@cache
def current() -> Settings:
    """The process's settings (read once; restart the app after changing them, as in Azure)."""
    return Settings.from_env()


def _connection_string_problem(value: str) -> str | None:
    """What is wrong with a storage connection string, never quoting it (it holds the account key)."""
    parts = dict(part.split("=", 1) for part in value.split(";") if "=" in part)
    missing = [name for name in ("AccountName", "AccountKey") if not parts.get(name)]
    if missing:
        return (
            f"BATCH_STORAGE_CONNECTION_STRING has no {' or '.join(missing)}: the app signs SAS with the account "
            "key, so use a key-based connection string (or BATCH_STORAGE_ACCOUNT_URL with managed identity)"
        )
    if not parts.get("BlobEndpoint") and not parts.get("EndpointSuffix"):
        return "BATCH_STORAGE_CONNECTION_STRING has neither BlobEndpoint nor EndpointSuffix: add one"
    return None


def _read_storage(
    get: Callable[[str], str | None],
    number: Callable[..., float],  # from_env's number(name, default, low, high, integer=False)
    problems: list[str],
    registry: str | None,
) -> StorageSettings:
    connection, account_url = get("BATCH_STORAGE_CONNECTION_STRING"), get("BATCH_STORAGE_ACCOUNT_URL")
    if connection and account_url:
        problems.append(
            "BATCH_STORAGE_CONNECTION_STRING and BATCH_STORAGE_ACCOUNT_URL are both set: set only one (the account "
            "URL in Azure with managed identity, the connection string for Azurite or a key-based account)"
        )
    if connection and (problem := _connection_string_problem(connection)):
        problems.append(problem)
    if account_url:
        parts = urlsplit(account_url)
        # Managed identity sends a bearer token, which the storage client only sends over https.
        if parts.scheme != "https" or not parts.hostname or parts.query:
            problems.append(
                # Not quoted: a URL with a query may carry a SAS.
                "BATCH_STORAGE_ACCOUNT_URL is invalid: set the account's https blob endpoint without a query, "
                "e.g. https://myaccount.blob.core.windows.net"
            )
    prefix = get("BATCH_STORAGE_CONTAINER_PREFIX") or "acb-"
    low, high = CONTAINER_PREFIX_CHARS
    if not (low <= len(prefix) <= high and CONTAINER_PREFIX_RULE.fullmatch(prefix)):
        problems.append(
            f"BATCH_STORAGE_CONTAINER_PREFIX={prefix!r} is invalid: set {low}-{high} lowercase letters, digits or "
            "single '-', starting with a letter or digit (tenant T's container is the prefix followed by T)"
        )
    enabled = bool(connection or account_url)
    image = get("BATCH_AGENT_IMAGE") or (f"{registry}/{AGENT_IMAGE_PATH}" if registry else None)
    if enabled and image is None:
        problems.append(
            "BATCH_AGENT_IMAGE is not set: blob storage is on, so tasks run with the acibatch agent; set its image "
            f"(or ACI_REGISTRY_SERVER, which makes it <registry>/{AGENT_IMAGE_PATH})"
        )
    return StorageSettings(
        connection_string=connection,
        account_url=account_url,
        container_prefix=prefix,
        agent_image=image,
        agent_cpu=number("BATCH_AGENT_CPU", 0.1, 0.01, 4),
        agent_memory_gb=number("BATCH_AGENT_MEMORY_GB", 0.2, 0.1, 16),
        agent_start_timeout_seconds=int(number("BATCH_AGENT_START_TIMEOUT_SECONDS", 1800, 60, 7 * 24 * 3600, True)),
    )
