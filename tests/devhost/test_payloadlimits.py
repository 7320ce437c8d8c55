"""The extension's custom-status limit and the backend payload limit, measured the way they measure."""

from __future__ import annotations

from devhost.payloadlimits import PAYLOAD_MAX_BYTES, custom_status_error, payload_error


def test_custom_status_is_measured_in_utf16_and_truncated_to_whole_kb() -> None:
    # {"t":"..."} is 8 characters around the text; 17,408 UTF-16 bytes (17 KB) is the first size refused.
    assert custom_status_error({"t": "x" * (8704 - 8 - 1)}) is None
    refused = custom_status_error({"t": "x" * (8704 - 8)})
    assert refused == (
        "The UTF-16 size of the JSON-serialized payload must not exceed 16 KB. The current payload size is 17 KB."
    )
    # Non-ASCII characters are not escaped by the extension's serializer: one UTF-16 unit each, or two past the BMP.
    assert custom_status_error("é" * 8000) is None
    assert custom_status_error("😀" * 4400) is not None
    assert custom_status_error(None) is None


def test_payloads_over_one_megabyte_are_refused_in_utf8_bytes() -> None:
    assert payload_error("input", "a" * PAYLOAD_MAX_BYTES) is None
    assert payload_error("input", "é" * (PAYLOAD_MAX_BYTES // 2)) is None
    refused = payload_error("input of the call_activity work", "é" * (PAYLOAD_MAX_BYTES // 2 + 1))
    assert refused is not None and refused.startswith("The input of the call_activity work is 1,048,578 bytes")
    assert payload_error("input", None) is None
