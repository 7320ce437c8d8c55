"""Seal secure env values so they can travel through Durable orchestration inputs (stored in plaintext).

AES-GCM with a key derived (HKDF-SHA256, own info label) from the callback signing key; the output is
`s1.<base64url(nonce + ciphertext)>`. Unsealing tries the current key, then the previous one, so a key
rotation does not strand jobs submitted before it.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_PREFIX = "s1."
_NONCE_BYTES = 12


class SealError(ValueError):
    """The sealed text is malformed or no configured key opens it: permanent, as no retry changes the keys."""


def _key(signing_key: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"acibatch-secure-env-v1").derive(
        signing_key.encode()
    )


def seal(signing_key: str, values: Mapping[str, str]) -> str:
    nonce = os.urandom(_NONCE_BYTES)
    plaintext = json.dumps(dict(values), separators=(",", ":")).encode()
    sealed = nonce + AESGCM(_key(signing_key)).encrypt(nonce, plaintext, _PREFIX.encode())
    return _PREFIX + base64.urlsafe_b64encode(sealed).decode()


def unseal(signing_keys: Sequence[str], sealed: str) -> dict[str, str]:
    if not sealed.startswith(_PREFIX):
        raise SealError("sealed values have an unknown format")
    try:
        raw = base64.urlsafe_b64decode(sealed[len(_PREFIX) :].encode())
    except ValueError as exc:
        raise SealError("sealed values are not valid base64") from exc
    nonce, ciphertext = raw[:_NONCE_BYTES], raw[_NONCE_BYTES:]
    for key in signing_keys:
        try:
            plaintext = AESGCM(_key(key)).decrypt(nonce, ciphertext, _PREFIX.encode())
        except (InvalidTag, ValueError):
            continue
        values = json.loads(plaintext)
        return {str(name): str(value) for name, value in values.items()}
    raise SealError(
        "no configured signing key opens them: the job was submitted under a BATCH_CALLBACK_SIGNING_KEY that is "
        "neither the current key nor BATCH_CALLBACK_SIGNING_KEY_PREVIOUS (set the old key as the previous one, "
        "or resubmit the job)"
    )
