"""Sealing of secure env values: round trip, key rotation, tampering, wrong keys and malformed text."""

import base64

import pytest

from acibatch.sealing import SealError, seal, unseal

VALUES = {"BATCH_CALLBACK_TOKEN": "tok-123", "DB_PASSWORD": "p@ss wörd", "EMPTY": ""}


def test_round_trip_hides_the_values_and_uses_a_fresh_nonce() -> None:
    sealed = seal("key-now", VALUES)
    assert sealed.startswith("s1.")
    assert "tok-123" not in sealed and "DB_PASSWORD" not in sealed
    assert unseal(["key-now"], sealed) == VALUES
    assert seal("key-now", VALUES) != sealed  # random nonce: equal inputs do not look equal


def test_empty_mapping_round_trips() -> None:
    assert unseal(["k"], seal("k", {})) == {}


def test_rotation_opens_text_sealed_with_the_previous_key() -> None:
    old = seal("key-before", VALUES)
    assert unseal(["key-now", "key-before"], old) == VALUES
    assert unseal(["key-now", "key-before"], seal("key-now", VALUES)) == VALUES


def test_wrong_key_is_refused() -> None:
    with pytest.raises(SealError, match="no configured signing key"):
        unseal(["other", "another"], seal("key-now", VALUES))
    with pytest.raises(SealError):
        unseal([], seal("key-now", VALUES))


def test_tampered_ciphertext_is_refused() -> None:
    sealed = seal("k", VALUES)
    raw = bytearray(base64.urlsafe_b64decode(sealed[3:]))
    raw[-1] ^= 0x01
    tampered = "s1." + base64.urlsafe_b64encode(bytes(raw)).decode()
    with pytest.raises(SealError):
        unseal(["k"], tampered)


@pytest.mark.parametrize("text", ["", "plain", "s2.AAAA", "s1.!!!not base64!!!", "s1.", "s1.AAAA"])
def test_malformed_text_is_refused(text: str) -> None:
    with pytest.raises(SealError):
        unseal(["k"], text)
