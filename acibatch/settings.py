"""App settings: read and validate every setting in one place; name each missing or invalid one.

An empty value counts as unset (Azure app settings and local.settings.json both produce empty strings).
`current()` caches the settings for the process, like the Functions host fixes them for a worker.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from urllib.parse import urlsplit

from acibatch import armrate
from acibatch.armrate import WindowLimit
from acibatch.outbound import OutboundPolicy, parse_allow_list

MIN_SIGNING_KEY_CHARS = 32


class SettingsError(ValueError):
    """One message naming every problem, so an operator fixes them all in one go."""


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

        allow_http = get("BATCH_OUTBOUND_ALLOW_HTTP") or "false"
        if allow_http.lower() not in {"true", "false"}:
            problems.append(f"BATCH_OUTBOUND_ALLOW_HTTP={allow_http!r} is invalid: set true (local use only) or false")
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
            outbound=OutboundPolicy(allow_http=allow_http.lower() == "true", allow=allow),
        )
        if problems:
            raise SettingsError("invalid app settings:\n  " + "\n  ".join(problems))
        return settings


@cache
def current() -> Settings:
    """The process's settings (read once; restart the app after changing them, as in Azure)."""
    return Settings.from_env()
