"""Callback tokens (per task attempt) and job-finished webhook signatures, both HMAC-SHA256.

A callback token is `v1.<base64url(hmac)>` over a domain-separated message naming the task instance and the
attempt, so a token for one task or attempt never verifies for another. Verification tries the current
and the previous signing key (rotation) and compares in constant time.

Each attempt has two tokens, one per sender (`TokenPurpose`): the task's own code gets the task token, the acibatch
agent's sidecar the agent token. They are signed under distinct domains, so neither can be derived from the other
without the signing key: user code holding the task token cannot send the agent's `completed` report.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from enum import StrEnum

_TOKEN_PREFIX = "v1."
_NOTIFY_DOMAIN = b"acibatch-notify-v1"


class TokenPurpose(StrEnum):
    """Who holds a callback token inside the container group."""

    TASK = "task"  # the user's container: succeeded, failed, progress
    AGENT = "agent"  # the acibatch agent's sidecar: completed


# The task token keeps the domain it always had, so tokens minted before the agent existed still verify.
_TOKEN_DOMAINS = {TokenPurpose.TASK: b"acibatch-callback-v1", TokenPurpose.AGENT: b"acibatch-agent-callback-v1"}


def _mac(key: str, *parts: bytes) -> bytes:
    # Length-prefix every part so ('ab','c') and ('a','bc') can never produce the same message.
    message = b"".join(len(part).to_bytes(4, "big") + part for part in parts)
    return hmac.new(key.encode(), message, hashlib.sha256).digest()


def callback_token(
    signing_key: str, task_instance_id: str, attempt: int, purpose: TokenPurpose = TokenPurpose.TASK
) -> str:
    mac = _mac(signing_key, _TOKEN_DOMAINS[purpose], task_instance_id.encode(), str(attempt).encode())
    return _TOKEN_PREFIX + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def verify_callback_token(
    token: str,
    task_instance_id: str,
    attempt: int,
    signing_keys: Sequence[str],
    purpose: TokenPurpose = TokenPurpose.TASK,
) -> bool:
    if not isinstance(token, str) or not token.isascii():
        return False
    valid = False
    for key in signing_keys:
        expected = callback_token(key, task_instance_id, attempt, purpose)
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
