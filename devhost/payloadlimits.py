"""Payload limits of the real Durable extension and backends, applied by devhost so an app that breaks them
fails here as it would in Azure.

- Custom status: the extension serializes it with `MessagePayloadDataConverter.Serialize(value, 16)`, which
  measures the compact JSON in UTF-16 (`Encoding.Unicode.GetByteCount`), truncates the size to whole KB and throws
  when that exceeds 16 (Azure/azure-functions-durable-extension, `DurableOrchestrationContext.SetCustomStatus`).
  The out-of-process shim sets the status before it schedules the episode's actions
  (`OutOfProcOrchestrationShim.ScheduleDurableTaskEvents`), so the orchestration fails and none of that
  episode's actions happen.
- Every other payload (orchestration input and output, activity input and result, event and entity message
  payloads, entity state): the Durable Task Scheduler backend refuses messages over 1 MB and the Python SDK has no
  large-payload offload for it, while Azure Storage moves large messages to blobs. devhost applies the stricter
  one, so an app that passes here runs on either backend.
"""

from __future__ import annotations

import json
from typing import Any

CUSTOM_STATUS_MAX_KB = 16
PAYLOAD_MAX_BYTES = 1024 * 1024


def compact_json(value: Any) -> str:
    """The JSON text Newtonsoft writes for a value: no spaces, non-ASCII characters not escaped."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def utf16_kb(text: str) -> int:
    """The size the extension compares with its limit: UTF-16 bytes / 1024, truncated to an integer."""
    return int(len(text.encode("utf-16-le")) / 1024.0)


def custom_status_error(value: Any) -> str | None:
    """The extension's error for a custom status that is too large, or None when it fits."""
    if value is None:
        return None
    size = utf16_kb(compact_json(value))
    if size <= CUSTOM_STATUS_MAX_KB:
        return None
    return (
        f"The UTF-16 size of the JSON-serialized payload must not exceed {CUSTOM_STATUS_MAX_KB:,} KB. "
        f"The current payload size is {size:,} KB."
    )


def payload_error(what: str, text: str | None) -> str | None:
    """Why a serialized payload (JSON text) is refused, or None when it is within the backend limit."""
    if text is None or len(text) * 4 <= PAYLOAD_MAX_BYTES:  # at most 4 UTF-8 bytes a character: surely fits
        return None
    size = len(text.encode("utf-8"))
    if size <= PAYLOAD_MAX_BYTES:
        return None
    return (
        f"The {what} is {size:,} bytes, over the {PAYLOAD_MAX_BYTES:,}-byte payload limit of the Durable Task "
        "Scheduler backend (devhost applies the strictest backend it supports); pass a reference to data kept "
        "elsewhere, such as a blob, instead"
    )
