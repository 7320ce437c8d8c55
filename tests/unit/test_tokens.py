"""Callback tokens per sender: the task's and the agent's tokens of one attempt differ, each verifies only for its
own purpose, both bind the task and the attempt, and both survive a signing-key rotation."""

from __future__ import annotations

import pytest

from acibatch.tokens import TokenPurpose, callback_sender, callback_token, verify_callback_token

KEY, NEW_KEY = "k" * 40, "n" * 40
TASK = "task:t:j:0"


def test_the_agent_token_is_not_the_task_token_and_verifies_only_as_the_agents() -> None:
    task = callback_token(KEY, TASK, 2)
    agent = callback_token(KEY, TASK, 2, TokenPurpose.AGENT)
    assert agent != task and agent.startswith("v1.")
    assert verify_callback_token(agent, TASK, 2, [KEY], TokenPurpose.AGENT)
    assert not verify_callback_token(agent, TASK, 2, [KEY])  # the default purpose is the task's
    assert not verify_callback_token(task, TASK, 2, [KEY], TokenPurpose.AGENT)


def test_the_task_token_is_the_one_minted_before_agent_tokens_existed() -> None:
    # The same HMAC message as before (domain, instance, attempt; the value is what the code of 52c96b0 minted): a
    # group created by the previous build still reports with the token it was given.
    assert callback_token(KEY, TASK, 2) == callback_token(KEY, TASK, 2, TokenPurpose.TASK)
    assert callback_token(KEY, TASK, 2) == "v1.U7D1lFMNe2ZvSgyiJe_ctAB2Chrpcv3jszpXZxIj7kc"


@pytest.mark.parametrize("purpose", list(TokenPurpose))
def test_each_sender_is_told_apart_and_bound_to_its_task_and_attempt(purpose: TokenPurpose) -> None:
    token = callback_token(KEY, TASK, 2, purpose)
    assert callback_sender(token, TASK, 2, [KEY]) is purpose
    assert callback_sender(token, TASK, 1, [KEY]) is None
    assert callback_sender(token, "task:t:j:1", 2, [KEY]) is None
    assert callback_sender(token, TASK, 2, ["x" * 40]) is None


@pytest.mark.parametrize("purpose", list(TokenPurpose))
def test_both_tokens_survive_a_rotation_of_the_signing_key(purpose: TokenPurpose) -> None:
    # The group was created with KEY; KEY is now the previous key and NEW_KEY the current one.
    token = callback_token(KEY, TASK, 3, purpose)
    assert callback_sender(token, TASK, 3, [NEW_KEY, KEY]) is purpose
    assert callback_sender(token, TASK, 3, [NEW_KEY]) is None  # past the rotation's overlap


@pytest.mark.parametrize("bad", ["", "v1.", "garbage", "v1.é", "Bearer x"])
def test_anything_else_is_nobodys_token(bad: str) -> None:
    assert callback_sender(bad, TASK, 2, [KEY]) is None
