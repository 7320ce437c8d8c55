"""Callback tokens (per task attempt) and job-finished webhook signatures, both HMAC-SHA256.

A callback token is `v1.<base64url(hmac)>` over a domain-separated message naming the task instance and the
attempt, so a token for one task or attempt never verifies for another. Verification tries the current
and the previous signing key (rotation) and compares in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence

_TOKEN_PREFIX = "v1."
_TOKEN_DOMAIN = b"acibatch-callback-v1"
_NOTIFY_DOMAIN = b"acibatch-notify-v1"


def _mac(key: str, *parts: bytes) -> bytes:
    # Length-prefix every part so ('ab','c') and ('a','bc') can never produce the same message.
    message = b"".join(len(part).to_bytes(4, "big") + part for part in parts)
    return hmac.new(key.encode(), message, hashlib.sha256).digest()


def callback_token(signing_key: str, task_instance_id: str, attempt: int) -> str:
    mac = _mac(signing_key, _TOKEN_DOMAIN, task_instance_id.encode(), str(attempt).encode())
    return _TOKEN_PREFIX + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def verify_callback_token(token: str, task_instance_id: str, attempt: int, signing_keys: Sequence[str]) -> bool:
    if not isinstance(token, str) or not token.isascii():
        return False
    valid = False
    for key in signing_keys:
        expected = callback_token(key, task_instance_id, attempt)
        # Keep checking every key so the time taken does not depend on which key matched.
        valid |= hmac.compare_digest(expected.encode(), token.encode())
    return valid


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
