"""Tenant API keys: `acb_<tenant>_<random>`, stored only as a hash, compared in constant time.

The key names its tenant so the API can find the tenant's stored hash without a lookup table. A plain
sha256 is the right hash here: the keys carry 256 bits of randomness, so a slow password hash would only
cost latency without making a brute-force any less hopeless.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from acibatch.naming import validate_tenant_id

PREFIX = "acb_"


def generate_api_key(tenant: str) -> str:
    return f"{PREFIX}{tenant}_{secrets.token_urlsafe(32)}"


def hash_api_key(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def verify_api_key(key: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_api_key(key).encode(), stored_hash.encode())


def tenant_of_key(key: str) -> str | None:
    if not key.startswith(PREFIX):
        return None
    tenant, separator, secret = key[len(PREFIX) :].partition("_")
    if not separator or not secret or validate_tenant_id(tenant):
        return None
    return tenant
