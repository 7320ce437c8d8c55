"""Callback tokens per sender: the task's and the agent's tokens of one attempt differ, each verifies only for its
own purpose, both bind the task and the attempt, and both survive a signing-key rotation. Today's tokens (v3, for
tasks waiting under per-attempt event names, and v2, for tasks started before them) name their attempt under the
HMAC, each format in its own domain; v1 tokens, minted by earlier builds, still verify."""

from __future__ import annotations

import pytest

from acibatch.tokens import (
    TokenFormat,
    TokenPurpose,
    callback_sender,
    callback_token,
    token_attempt,
    token_format,
    verify_callback_token,
)

KEY, NEW_KEY = "k" * 40, "n" * 40
TASK = "task:t:j:0"


def test_the_agent_token_is_not_the_task_token_and_verifies_only_as_the_agents() -> None:
    task = callback_token(KEY, TASK, 2)
    agent = callback_token(KEY, TASK, 2, TokenPurpose.AGENT)
    assert agent != task and agent.startswith("v2.2.")
    assert verify_callback_token(agent, TASK, 2, [KEY], TokenPurpose.AGENT)
    assert not verify_callback_token(agent, TASK, 2, [KEY])  # the default purpose is the task's
    assert not verify_callback_token(task, TASK, 2, [KEY], TokenPurpose.AGENT)


def test_the_v1_task_token_is_the_one_minted_before_agent_tokens_existed() -> None:
    # The same HMAC message as before (domain, instance, attempt; the value is what the code of 52c96b0 minted): a
    # group created by a build before v2 still reports with the token it was given.
    v1 = callback_token(KEY, TASK, 2, token_format=TokenFormat.V1)
    assert v1 == callback_token(KEY, TASK, 2, TokenPurpose.TASK, TokenFormat.V1)
    assert v1 == "v1.U7D1lFMNe2ZvSgyiJe_ctAB2Chrpcv3jszpXZxIj7kc"
    assert callback_sender(v1, TASK, 2, [KEY]) is TokenPurpose.TASK


def test_v2_and_v3_tokens_name_their_attempt_and_v2_is_minted_by_default() -> None:
    # v2 by default, as BATCH_CALLBACK_EVENTS is shared by default: a v3 token's reports go under a per-attempt name.
    token = callback_token(KEY, TASK, 12, token_format=TokenFormat.V3)
    assert token.startswith("v3.12.") and token_format(token) is TokenFormat.V3 and token_attempt(token) == 12
    v2 = callback_token(KEY, TASK, 12)
    assert v2 == callback_token(KEY, TASK, 12, token_format=TokenFormat.V2)
    assert v2.startswith("v2.12.") and token_format(v2) is TokenFormat.V2 and token_attempt(v2) == 12
    v1 = callback_token(KEY, TASK, 12, token_format=TokenFormat.V1)
    assert (token_format(v1), token_attempt(v1)) == (TokenFormat.V1, None)  # v1 names no attempt


@pytest.mark.parametrize("written", [TokenFormat.V2, TokenFormat.V3])
def test_the_attempt_a_token_names_is_under_its_hmac(written: TokenFormat) -> None:
    # Rewriting the attempt in clear (to pass an attempt 2 token off as attempt 3's) breaks the HMAC.
    token = callback_token(KEY, TASK, 2, token_format=written)
    relabelled = token.replace(f"{written}.2.", f"{written}.3.", 1)
    assert token_attempt(relabelled) == 3
    assert callback_sender(relabelled, TASK, 3, [KEY]) is None
    assert callback_sender(relabelled, TASK, 2, [KEY]) is None


def test_a_mac_relabelled_as_another_format_is_nobodys_token() -> None:
    # Each format signs under its own domain: a v1 token's MAC with an attempt put in front is not a v2 or v3
    # token, and a v2 token (read, then raised only for the current attempt) cannot pass for a v3 (raised unread).
    mac = callback_token(KEY, TASK, 2, token_format=TokenFormat.V1).removeprefix("v1.")
    assert callback_sender(f"v2.2.{mac}", TASK, 2, [KEY]) is None
    assert callback_sender(f"v3.2.{mac}", TASK, 2, [KEY]) is None
    v2 = callback_token(KEY, TASK, 2, token_format=TokenFormat.V2)
    assert callback_sender(v2.replace("v2.", "v3.", 1), TASK, 2, [KEY]) is None
    v3 = callback_token(KEY, TASK, 2, token_format=TokenFormat.V3)
    assert callback_sender(v3.replace("v3.", "v2.", 1), TASK, 2, [KEY]) is None


@pytest.mark.parametrize("token_format_", list(TokenFormat))
@pytest.mark.parametrize("purpose", list(TokenPurpose))
def test_each_sender_is_told_apart_and_bound_to_its_task_and_attempt(
    purpose: TokenPurpose, token_format_: TokenFormat
) -> None:
    token = callback_token(KEY, TASK, 2, purpose, token_format_)
    assert callback_sender(token, TASK, 2, [KEY]) is purpose
    assert callback_sender(token, TASK, 1, [KEY]) is None
    assert callback_sender(token, "task:t:j:1", 2, [KEY]) is None
    assert callback_sender(token, TASK, 2, ["x" * 40]) is None


@pytest.mark.parametrize("token_format_", list(TokenFormat))
@pytest.mark.parametrize("purpose", list(TokenPurpose))
def test_both_tokens_survive_a_rotation_of_the_signing_key(purpose: TokenPurpose, token_format_: TokenFormat) -> None:
    # The group was created with KEY; KEY is now the previous key and NEW_KEY the current one.
    token = callback_token(KEY, TASK, 3, purpose, token_format_)
    assert callback_sender(token, TASK, 3, [NEW_KEY, KEY]) is purpose
    assert callback_sender(token, TASK, 3, [NEW_KEY]) is None  # past the rotation's overlap


GOOD_MAC = "A" * 43


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "v1.",
        "garbage",
        "v1.é",
        "Bearer x",
        "v2.",
        "v2.2.",
        f"v2.0.{GOOD_MAC}",  # attempts start at 1
        f"v2.02.{GOOD_MAC}",  # one spelling per attempt
        f"v2.+2.{GOOD_MAC}",
        f"v2.1234567890.{GOOD_MAC}",
        f"v2.2.{GOOD_MAC}=",
        f"v2.2.{GOOD_MAC}\n",
        f"v4.2.{GOOD_MAC}",
        f"v3.0.{GOOD_MAC}",
        f"v3.2.{GOOD_MAC}A",
        f"v1.{GOOD_MAC}A",
    ],
)
def test_anything_else_is_nobodys_token(bad: str) -> None:
    assert callback_sender(bad, TASK, 2, [KEY]) is None
    assert token_attempt(bad) is None
