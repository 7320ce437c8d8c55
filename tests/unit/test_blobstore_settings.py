"""The storage settings: off by default, one source at a time, each problem named, the account key never shown."""

from __future__ import annotations

import pytest

from acibatch.settings import Settings, SettingsError
from tests.unit.test_settings import VALID

KEY = "c2VjcmV0LWFjY291bnQta2V5LXRoYXQtbXVzdC1uZXZlci1iZS1zaG93bg=="
AZURITE = (
    f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={KEY};"
    "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"
)


def problems(**values: str) -> str:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({**VALID, **values})
    assert KEY not in str(caught.value)
    return str(caught.value)


def test_storage_is_off_unless_configured() -> None:
    settings = Settings.from_env(VALID)
    assert not settings.storage_enabled and settings.storage.agent_image is None
    assert settings.storage.container_prefix == "acb-"


def test_a_connection_string_turns_it_on_and_stays_out_of_every_repr() -> None:
    settings = Settings.from_env({**VALID, "BATCH_STORAGE_CONNECTION_STRING": AZURITE, "BATCH_AGENT_IMAGE": "a/b:1"})
    assert settings.storage_enabled and settings.storage.connection_string == AZURITE
    assert (settings.storage.agent_image, settings.storage.agent_cpu, settings.storage.agent_memory_gb) == (
        "a/b:1", 0.1, 0.2)  # fmt: skip
    assert KEY not in repr(settings) and KEY not in repr(settings.storage)


def test_the_agent_image_defaults_to_the_registry_and_is_required_without_one() -> None:
    account = "https://acct.blob.core.windows.net"
    on_registry = Settings.from_env({**VALID, "BATCH_STORAGE_ACCOUNT_URL": account, "ACI_REGISTRY_SERVER": "r.io"})
    assert on_registry.storage.agent_image == "r.io/acibatch/agent:1"
    message = problems(BATCH_STORAGE_ACCOUNT_URL="https://acct.blob.core.windows.net")
    assert "BATCH_AGENT_IMAGE is not set" in message


def test_each_storage_problem_is_named() -> None:
    both = problems(BATCH_STORAGE_CONNECTION_STRING=AZURITE, BATCH_STORAGE_ACCOUNT_URL="https://a.blob.core.windows.net",
                    BATCH_AGENT_IMAGE="a/b:1")  # fmt: skip
    assert "are both set: set only one" in both
    no_key = problems(BATCH_STORAGE_CONNECTION_STRING=AZURITE.replace(f"AccountKey={KEY};", ""), BATCH_AGENT_IMAGE="x")
    assert "has no AccountKey" in no_key
    sas_in_url = problems(BATCH_STORAGE_ACCOUNT_URL="http://a.blob.core.windows.net?sig=abc", BATCH_AGENT_IMAGE="x")
    assert "BATCH_STORAGE_ACCOUNT_URL is invalid" in sas_in_url and "sig=abc" not in sas_in_url
    for prefix in ("ACB-", "a", "-acb", "a--b-", "x" * 24):
        assert "BATCH_STORAGE_CONTAINER_PREFIX" in problems(BATCH_STORAGE_CONTAINER_PREFIX=prefix)
    assert "BATCH_AGENT_CPU" in problems(BATCH_AGENT_CPU="lots")
    assert "BATCH_AGENT_MEMORY_GB" in problems(BATCH_AGENT_MEMORY_GB="0")
    assert (
        Settings.from_env({**VALID, "BATCH_STORAGE_CONTAINER_PREFIX": "batch-x-"}).storage.container_prefix
        == "batch-x-"
    )
