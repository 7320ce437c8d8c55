"""Frames between the devhost host process and its language workers: a JSON header plus a raw body.

A frame is `[4-byte header length][4-byte body length][header JSON][body bytes]`. The body carries the
payloads that are already JSON text or bytes (an orchestration's context, an activity's input, an HTTP body)
so they cross the socket as they are, without being escaped into a JSON string or base64-encoded.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

from localtools import fastjson

_LENGTHS = struct.Struct(">II")


def encode(header: dict[str, Any], body: bytes = b"") -> bytes:
    head = fastjson.dumps(header)
    return _LENGTHS.pack(len(head), len(body)) + head + body


async def read(reader: asyncio.StreamReader) -> tuple[dict[str, Any], bytes] | None:
    """The next frame, or None at a clean end of stream."""
    try:
        lengths = await reader.readexactly(_LENGTHS.size)
    except asyncio.IncompleteReadError as error:
        if error.partial:
            raise
        return None
    head_length, body_length = _LENGTHS.unpack(lengths)
    data = await reader.readexactly(head_length + body_length)
    header: dict[str, Any] = fastjson.loads(data[:head_length])
    return header, data[head_length:]
