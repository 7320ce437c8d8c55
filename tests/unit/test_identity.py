"""Naming, callback tokens, notification signatures and API keys (sealing: test_sealing.py)."""

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from acibatch.apikeys import generate_api_key, hash_api_key, tenant_of_key, verify_api_key
from acibatch.naming import (
    container_group_name,
    job_instance_id,
    new_job_id,
    parse_task_instance_id,
    task_instance_id,
    validate_tenant_id,
)
from acibatch.spec import ID_RULE
from acibatch.tokens import callback_token, sign_notification, verify_callback_token, verify_notification

ACI_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?!-)){0,61}[a-z0-9]$")
KEY, OLD_KEY = "k" * 40, "o" * 40
ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}", fullmatch=True)
tenants = st.from_regex(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){0,39}", fullmatch=True)


@pytest.mark.parametrize("tenant", ["a", "team-1", "x" * 40])
def test_valid_tenant_ids(tenant: str) -> None:
    assert validate_tenant_id(tenant) is None


@pytest.mark.parametrize("tenant", ["", "Team", "a--b", "-a", "a-", "x" * 41, "a_b", "a/b"])
def test_invalid_tenant_ids(tenant: str) -> None:
    assert validate_tenant_id(tenant)


@given(tenants, ids, ids, st.integers(1, 20))
def test_group_names_follow_aci_rules(tenant: str, job: str, task: str, attempt: int) -> None:
    name = container_group_name(tenant, job, task, attempt)
    assert ACI_NAME.match(name), name
    assert container_group_name(tenant, job, task, attempt) == name


def test_group_names_stay_unique_when_truncated() -> None:
    long_job = "j" * 60
    names = {container_group_name("t", long_job, f"task-{i}", a) for i in range(50) for a in (1, 2)}
    assert len(names) == 100
    assert container_group_name("a", "b-c", "d", 1) != container_group_name("a-b", "c", "d", 1)


@given(tenants, ids, ids)
def test_instance_ids_round_trip_and_follow_durable_rules(tenant: str, job: str, task: str) -> None:
    instance = task_instance_id(tenant, job, task)
    assert parse_task_instance_id(instance) == (tenant, job, task)
    for identifier in (instance, job_instance_id(tenant, job)):
        assert len(identifier) <= 256 and not identifier.startswith("@")
        assert not set(identifier) & set("/\\?#")
    assert parse_task_instance_id("job:t:j") is None


def test_new_job_ids_are_valid_and_distinct() -> None:
    generated = {new_job_id() for _ in range(100)}
    assert len(generated) == 100 and all(ID_RULE.match(job) for job in generated)


def test_callback_tokens_bind_task_and_attempt_and_survive_rotation() -> None:
    token = callback_token(KEY, "task:t:j:0", 2)
    assert verify_callback_token(token, "task:t:j:0", 2, [KEY])
    assert not verify_callback_token(token, "task:t:j:0", 1, [KEY])
    assert not verify_callback_token(token, "task:t:j:1", 2, [KEY])
    assert not verify_callback_token(token, "task:t:j:0", 2, ["x" * 40])
    assert verify_callback_token(token, "task:t:j:0", 2, ["n" * 40, KEY])  # signed with the now-previous key
    for bad in ("", "v1.", "garbage", "é" * 10, token[:-1]):
        assert not verify_callback_token(bad, "task:t:j:0", 2, [KEY])


def test_notification_signature() -> None:
    body = b'{"jobId": "j"}'
    header = sign_notification(KEY, body, 1000)
    assert header.startswith("t=1000,v1=")
    assert verify_notification(header, body, [OLD_KEY, KEY], now=1100)
    assert not verify_notification(header, body + b" ", [KEY], now=1100)
    assert not verify_notification(header, body, [KEY], now=2000)
    assert not verify_notification("nonsense", body, [KEY], now=1000)


def test_api_keys_name_their_tenant_and_verify_only_against_their_hash() -> None:
    key = generate_api_key("team-1")
    assert tenant_of_key(key) == "team-1"
    stored = hash_api_key(key)
    assert key not in stored
    assert verify_api_key(key, stored)
    assert not verify_api_key(generate_api_key("team-1"), stored)
    for bad in ("", "acb_", "acb_Team_x", "acb_team", "other_team_x"):
        assert tenant_of_key(bad) is None
