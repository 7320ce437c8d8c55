"""Reading optional values off a message's JSON: absent and null read the same."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def optional_float(data: Any, key: str) -> float | None:
    """`data[key]` as a float, or None when `data` is no object (a call that answered nothing) or has no value."""
    value = data.get(key) if isinstance(data, Mapping) else None
    return None if value is None else float(value)


def optional_int(data: Mapping[str, Any], key: str) -> int | None:
    value = data.get(key)
    return None if value is None else int(value)
