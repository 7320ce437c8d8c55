"""App settings: every missing or invalid setting is named in one error."""

import pytest

from acibatch.settings import Settings, SettingsError

VALID = {
    "ACI_SUBSCRIPTION_ID": "00000000-0000-0000-0000-000000000001",
    "ACI_RESOURCE_GROUP": "rg",
    "ACI_LOCATION": "westeurope",
    "BATCH_ADMIN_KEY": "admin-secret",
    "BATCH_CALLBACK_SIGNING_KEY": "s" * 32,
    "BATCH_CALLBACK_BASE_URL": "https://batch.example.com",
}


def test_defaults() -> None:
    settings = Settings.from_env(VALID)
    assert settings.aci_endpoint is None
    assert (settings.max_groups, settings.max_cores, settings.poll_seconds) == (100, 100.0, 30.0)
    assert settings.sweep_schedule == "0 */5 * * * *"
    assert settings.signing_keys == ("s" * 32,)
    assert settings.max_body_bytes == 1024 * 1024


def test_optional_values_and_rotation() -> None:
    settings = Settings.from_env({
        **VALID, "ACI_ENDPOINT": "http://127.0.0.1:7073", "ACI_ENDPOINT_TOKEN": "emulator-token",
        "BATCH_CALLBACK_SIGNING_KEY_PREVIOUS": "p" * 40,
        "ACI_REGISTRY_SERVER": "acr.example.io", "ACI_REGISTRY_IDENTITY": "/subscriptions/x/id",
        "BATCH_POLL_SECONDS": "0.5", "ACI_MAX_GROUPS": "7",
    })  # fmt: skip
    assert (settings.aci_endpoint, settings.aci_endpoint_token) == ("http://127.0.0.1:7073", "emulator-token")
    assert settings.signing_keys == ("s" * 32, "p" * 40)
    assert (settings.poll_seconds, settings.max_groups) == (0.5, 7)


def test_every_problem_is_named() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({
            "ACI_SUBSCRIPTION_ID": "", "BATCH_CALLBACK_SIGNING_KEY": "short", "BATCH_POLL_SECONDS": "soon",
            "ACI_ENDPOINT": "not a url", "ACI_REGISTRY_USERNAME": "user",
        })  # fmt: skip
    message = str(caught.value)
    for name in ("ACI_SUBSCRIPTION_ID", "ACI_RESOURCE_GROUP", "ACI_LOCATION", "BATCH_ADMIN_KEY",
                 "BATCH_CALLBACK_BASE_URL", "BATCH_POLL_SECONDS", "ACI_ENDPOINT", "ACI_REGISTRY_PASSWORD",
                 "ACI_REGISTRY_SERVER", "ACI_ENDPOINT_TOKEN"):  # fmt: skip
        assert name in message
    assert "BATCH_CALLBACK_SIGNING_KEY is too short" in message


def test_the_sample_settings_file_lists_valid_values_for_every_setting() -> None:
    import json
    import re
    from pathlib import Path

    root = Path(__file__).parents[2]
    values = json.loads((root / "local.settings.sample.json").read_text())["Values"]
    Settings.from_env(values)
    read = set(re.findall(r'"((?:ACI|BATCH)_[A-Z_]+)"', (root / "acibatch" / "settings.py").read_text()))
    assert read <= set(values), f"settings missing from the sample: {read - set(values)}"


def test_an_emulator_endpoint_needs_its_token() -> None:
    # aciemu refuses every ARM call without its token (401): say so at start, not at the first task.
    with pytest.raises(SettingsError, match="ACI_ENDPOINT_TOKEN is not set: it is required with ACI_ENDPOINT"):
        Settings.from_env({**VALID, "ACI_ENDPOINT": "http://127.0.0.1:7073"})
    assert Settings.from_env(VALID).aci_endpoint_token is None  # real ARM: managed identity, no token setting


def test_callback_event_names_are_shared_unless_per_attempt_is_asked_for() -> None:
    # Shared by default: a build older than per-attempt names cannot run a per-attempt task (docs/callbacks.md).
    assert Settings.from_env(VALID).callback_events == "shared"
    assert Settings.from_env({**VALID, "BATCH_CALLBACK_EVENTS": "perAttempt"}).callback_events == "perAttempt"
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({**VALID, "BATCH_CALLBACK_EVENTS": "per-attempt"})
    assert "BATCH_CALLBACK_EVENTS='per-attempt' is invalid: set shared or perAttempt" in str(caught.value)


def test_task_waves_are_off_unless_asked_for() -> None:
    # Off by default: an older build that runs an episode of a windowed chunk breaks it (docs/versioning.md).
    assert Settings.from_env(VALID).task_waves is False
    assert Settings.from_env({**VALID, "BATCH_TASK_WAVES": "true"}).task_waves is True
    assert Settings.from_env({**VALID, "BATCH_TASK_WAVES": "False"}).task_waves is False
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({**VALID, "BATCH_TASK_WAVES": "on"})
    assert "BATCH_TASK_WAVES='on' is invalid: set true" in str(caught.value)
