"""Parse each history timestamp once per worker process instead of once per episode, and the usual shape quickly.

The Python worker has no extended sessions: on every episode the Durable SDK rebuilds the orchestration from its
whole history, and each `HistoryEvent` parses its `Timestamp` with dateutil's general parser, which is most of an
episode's CPU once a history holds a few dozen events (a task generation replays a poll's events on every later
poll). The strings it parses never change (a stored event keeps its timestamp) and the worker is a long-lived
process in Azure as here, so `install` wraps the SDK's parser in a bounded cache keyed by the text: the result is
the very object dateutil returned for that text (datetimes are immutable), so the SDK sees no difference.

Each text is still parsed once per worker, so the shape the Durable extension writes (.NET's round-trip UTC time,
`2026-01-05T09:00:00.1234567Z`, up to seven fraction digits, none for whole seconds) is read directly into the value
dateutil would return: the same fields, microseconds cut to six digits as dateutil cuts them, and the tzinfo dateutil
gives "Z" on this machine (`tzutc()`, or `tzlocal()` when the machine's own zone is called UTC, as on Azure's
workers). Any other text goes to the parser the SDK had.

It wraps whatever parser the SDK module holds when the app is imported (devhost's worker may have put its own
there first: `devhost.fastpaths`), and installing twice wraps once.
"""

from __future__ import annotations

import functools
import importlib
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

# The module itself: the package re-exports the class under the module's name. An SDK internal (requirements.txt
# pins the minor version it was checked on): without it, `install` leaves the SDK as it is.
try:
    HISTORY_EVENT_MODULE: Any = importlib.import_module("azure.durable_functions.models.history.HistoryEvent")
except ImportError:  # pragma: no cover - only with an SDK this was not tested on
    HISTORY_EVENT_MODULE = None
PARSER_NAME = "dt_parse"
# Distinct timestamps kept: a few MB, more than the histories a worker replays in turn hold together.
TIMESTAMPS_KEPT = 16_384
_MARK = "_acibatch_timestamp_cache"
EXTENSION_SHAPE = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,7}))?Z")
ZULU_SAMPLE = "2026-01-05T09:00:00Z"


def extension_shape_or(parse: Callable[[str], datetime]) -> Callable[[str], datetime]:
    """A parser that reads the extension's shape itself and hands any other text (or an impossible date in that
    shape, so the error is `parse`'s own) to `parse`."""
    # What `parse` makes of "Z" (dateutil's answer depends on the machine's zone name, which does not change).
    zulu = parse(ZULU_SAMPLE).tzinfo

    def parse_timestamp(text: str) -> datetime:
        match = EXTENSION_SHAPE.fullmatch(text)
        if match is not None:
            year, month, day, hour, minute, second, fraction = match.groups()
            try:
                return datetime(
                    int(year),
                    int(month),
                    int(day),
                    int(hour),
                    int(minute),
                    int(second),
                    int((fraction or "0").ljust(6, "0")[:6]),
                    tzinfo=zulu,
                )
            except ValueError:
                pass
        return parse(text)

    return parse_timestamp


def cached(parse: Callable[[str], datetime]) -> Callable[[str], datetime]:
    """`parse` behind a bounded cache keyed by the text (thread-safe: sync orchestrators may share a worker)."""
    wrapped: Any = functools.lru_cache(maxsize=TIMESTAMPS_KEPT)(parse)
    setattr(wrapped, _MARK, True)
    return wrapped  # type: ignore[no-any-return]


def install() -> bool:
    """Put the cache around the SDK's timestamp parser; False when it was there already (or the SDK moved it)."""
    parse = getattr(HISTORY_EVENT_MODULE, PARSER_NAME, None)
    if not callable(parse) or getattr(parse, _MARK, False):
        return False
    setattr(HISTORY_EVENT_MODULE, PARSER_NAME, cached(extension_shape_or(parse)))
    return True
