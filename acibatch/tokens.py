"""Callback tokens (per task attempt) and job-finished webhook signatures, both HMAC-SHA256.

A callback token is an HMAC over a domain-separated message naming the task instance and the attempt, so a token
for one task or attempt never verifies for another. Verification tries the current and the previous signing key
(rotation) and compares in constant time.

Tokens come in three formats (`TokenFormat`). `v3.<attempt>.<base64url(hmac)>` and `v2.<attempt>.<base64url(hmac)>`
name their attempt in clear (the HMAC covers it), so the callback endpoint can verify them with no read of the task.
A v3 token is minted only for a task that waits for each attempt's reports under an event name of that attempt's
own (`acibatch.checkpoint.CallbackEvents`): its report is raised with no read at all. A v2 token is minted for a
task started before that, which waits under one name for every attempt: the endpoint reads the task first so that
only the current attempt's report is raised. `v1.<base64url(hmac)>` names nothing: containers created before v2
hold it, and the endpoint reads the task's live record to learn the attempt to check it against. The attempt is
not secret (containers get it as `BATCH_ATTEMPT`); only the HMAC is.

Each attempt has two tokens, one per sender (`TokenPurpose`): the task's own code gets the task token, the acibatch
agent's sidecar the agent token. They are signed under distinct domains, so neither can be derived from the other
without the signing key: user code holding the task token cannot send the agent's `completed` report.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Sequence
from enum import StrEnum

_NOTIFY_DOMAIN = b"acibatch-notify-v1"


class TokenPurpose(StrEnum):
    """Who holds a callback token inside the container group."""

    TASK = "task"  # the user's container: succeeded, failed, progress
    AGENT = "agent"  # the acibatch agent's sidecar: completed


class TokenFormat(StrEnum):
    """How a callback token is written: the prefix before its first '.'."""

    V1 = "v1"  # `v1.<mac>`: minted before v2; the endpoint reads the task to learn the attempt
    V2 = "v2"  # `v2.<attempt>.<mac>`: the attempt in clear, under the HMAC; for tasks with one callback event name
    V3 = "v3"  # `v3.<attempt>.<mac>`: as v2, for tasks whose callback event names carry the attempt


# The formats that write the attempt in clear.
ATTEMPT_NAMED = (TokenFormat.V2, TokenFormat.V3)


# Every (format, purpose) signs under a domain of its own, so no token can be re-labelled as another format or
# sender. The v1 domains are the ones v1 tokens always had, so tokens minted by earlier builds still verify.
_TOKEN_DOMAINS = {
    (TokenFormat.V1, TokenPurpose.TASK): b"acibatch-callback-v1",
    (TokenFormat.V1, TokenPurpose.AGENT): b"acibatch-agent-callback-v1",
    (TokenFormat.V2, TokenPurpose.TASK): b"acibatch-callback-v2",
    (TokenFormat.V2, TokenPurpose.AGENT): b"acibatch-agent-callback-v2",
    (TokenFormat.V3, TokenPurpose.TASK): b"acibatch-callback-v3",
    (TokenFormat.V3, TokenPurpose.AGENT): b"acibatch-agent-callback-v3",
}
# The shapes minting produces (an HMAC-SHA256 is 43 unpadded base64url characters; an attempt has no sign or leading
# zero and is far below a billion): anything else is nobody's token, refused before any work.
_MAC = r"[A-Za-z0-9_-]{43}"
_SHAPES = {
    TokenFormat.V1: re.compile(rf"v1\.{_MAC}", re.ASCII),
    **{written: re.compile(rf"{written}\.([1-9][0-9]{{0,8}})\.{_MAC}", re.ASCII) for written in ATTEMPT_NAMED},
}


def _mac(key: str, *parts: bytes) -> bytes:
    # Length-prefix every part so ('ab','c') and ('a','bc') can never produce the same message.
    message = b"".join(len(part).to_bytes(4, "big") + part for part in parts)
    return hmac.new(key.encode(), message, hashlib.sha256).digest()


def callback_token(
    signing_key: str,
    task_instance_id: str,
    attempt: int,
    purpose: TokenPurpose = TokenPurpose.TASK,
    token_format: TokenFormat = TokenFormat.V2,
) -> str:
    """The token of `purpose`'s sender for this attempt of the task: v2 for a task that waits under the shared name
    (the default, as BATCH_CALLBACK_EVENTS is), v3 for one that waits under per-attempt event names, v1 only to
    verify tokens minted before v2. A v3 token's reports go under a name a shared-name task never waits for, so the
    create activity always passes the format its task recorded."""
    domain = _TOKEN_DOMAINS[token_format, purpose]
    mac = base64.urlsafe_b64encode(_mac(signing_key, domain, task_instance_id.encode(), str(attempt).encode()))
    named = f".{attempt}" if token_format in ATTEMPT_NAMED else ""
    return f"{token_format}{named}.{mac.rstrip(b'=').decode()}"


def token_format(token: object) -> TokenFormat | None:
    """The format a token is written in, or None when it has the shape of neither (nobody's token)."""
    if not isinstance(token, str):
        return None
    return next((name for name, shape in _SHAPES.items() if shape.fullmatch(token)), None)


def token_attempt(token: object) -> int | None:
    """The attempt a v2 or v3 token names (not verified: `callback_sender` does that); None for any other token."""
    written = token_format(token)
    match = _SHAPES[written].fullmatch(str(token)) if written in ATTEMPT_NAMED else None
    return int(match.group(1)) if match else None


def verify_callback_token(
    token: str,
    task_instance_id: str,
    attempt: int,
    signing_keys: Sequence[str],
    purpose: TokenPurpose = TokenPurpose.TASK,
) -> bool:
    """Whether `token`, in either format, is `purpose`'s token for this attempt of the task under one of the keys."""
    written = token_format(token)
    if written is None:
        return False
    valid = False
    for key in signing_keys:
        expected = callback_token(key, task_instance_id, attempt, purpose, written)
        # Keep checking every key so the time taken does not depend on which key matched.
        valid |= hmac.compare_digest(expected.encode(), token.encode())
    return valid


def callback_sender(
    token: str, task_instance_id: str, attempt: int, signing_keys: Sequence[str]
) -> TokenPurpose | None:
    """Whose token this is for the attempt (current or previous signing key), or None when it is neither's.

    Both purposes are always checked, so the time taken does not tell which one matched."""
    matches = [
        purpose
        for purpose in TokenPurpose
        if verify_callback_token(token, task_instance_id, attempt, signing_keys, purpose)
    ]
    return matches[0] if len(matches) == 1 else None


def sign_notification(signing_key: str, body: bytes, timestamp: int) -> str:
    """The `X-Acibatch-Signature` header value: `t=<unix seconds>,v1=<hex hmac of "<t>.<body>">`."""
    mac = _mac(signing_key, _NOTIFY_DOMAIN, str(timestamp).encode(), body)
    return f"t={timestamp},v1={mac.hex()}"


def verify_notification(
    header: str, body: bytes, signing_keys: Sequence[str], now: int, tolerance_seconds: int = 300
) -> bool:
    """Receiver side: the signature matches one key and the timestamp is within the tolerance."""
    try:
        fields = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(fields["t"])
        given = fields["v1"]
    except (ValueError, KeyError):
        return False
    if abs(now - timestamp) > tolerance_seconds:
        return False
    valid = False
    for key in signing_keys:
        expected = sign_notification(key, body, timestamp).split("v1=", 1)[1]
        valid |= hmac.compare_digest(expected, given)
    return valid
