"""Two fast paths inside the Durable SDK's replay (on by default; `DEVHOST_SDK_FAST_PATHS=0` turns both off).

The SDK rebuilds its whole view of an orchestration on every episode, and two fixed costs of that dominate
a short orchestration's replay here; each has a drop-in replacement that returns what the SDK's own code would:

- **Timestamps.** Every history event parses its `Timestamp` with dateutil's general-purpose parser (~40 us
  each, every episode). devhost writes every timestamp in one fixed shape (`2026-11-25T01:57:46.123456Z`),
  which `datetime.fromisoformat` reads ~30x faster. `parse_timestamp` returns what dateutil would (same
  fields, an equal tzinfo: tests compare them) and hands any other shape to dateutil.
- **A class per episode.** `TaskOrchestrationExecutor.__init__` defines a `namedtuple` class on every episode
  (`collections.namedtuple` compiles a class each call: a fifth of a worker's CPU on HelloCities5). The
  module's `namedtuple` is swapped for one that returns the same class for the same name and fields, so the
  executor gets an identical mapping without rebuilding the class.

Each swaps one module global of the SDK, in the language workers only, so orchestrator code cannot tell the
difference; Azure's Python worker does not do this: it changes devhost's speed, nothing else. The bench
measures devhost with the SDK stock too.
"""

from __future__ import annotations

import collections
import functools
import importlib
import os
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from dateutil.parser import parse as dateutil_parse

SETTING = "DEVHOST_SDK_FAST_PATHS"
_SAMPLE = "2026-11-25T01:57:46.123456Z"
# dateutil reads "Z" as tzutc(), or as tzlocal() when the machine's own zone is called UTC: take its choice.
_ZULU = dateutil_parse(_SAMPLE).tzinfo
# The package re-exports the classes under the modules' names, so fetch the modules themselves.
_HISTORY_EVENT_MODULE = importlib.import_module("azure.durable_functions.models.history.HistoryEvent")
_EXECUTOR_MODULE = importlib.import_module("azure.durable_functions.models.TaskOrchestrationExecutor")


def parse_timestamp(text: str) -> datetime:
    """What `dateutil.parser.parse(text)` returns, quickly for devhost's own timestamp shape."""
    if len(text) == len(_SAMPLE) and text[-1] == "Z" and text[10] == "T" and text[19] == ".":
        try:
            return datetime.fromisoformat(text[:-1]).replace(tzinfo=_ZULU)
        except ValueError:
            pass
    return dateutil_parse(text)


@functools.cache
def _namedtuple_class(typename: str, field_names: tuple[str, ...]) -> Any:
    return collections.namedtuple(typename, field_names)


def cached_namedtuple(typename: str, field_names: Any, **options: Any) -> Any:
    """`collections.namedtuple`, made once per (name, fields) when called the plain way the SDK calls it."""
    if options or isinstance(field_names, str):
        return collections.namedtuple(typename, field_names, **options)
    return _namedtuple_class(typename, tuple(field_names))


def enabled(environ: Mapping[str, str] | None = None) -> bool:
    values = os.environ if environ is None else environ
    return values.get(SETTING, "1").strip() != "0"


def install(environ: Mapping[str, str] | None = None) -> bool:
    """Use the fast paths in the SDK unless the setting says 0 (then put the stock ones back); True when on."""
    fast = enabled(environ)
    setattr(_HISTORY_EVENT_MODULE, "dt_parse", parse_timestamp if fast else dateutil_parse)  # noqa: B010
    setattr(_EXECUTOR_MODULE, "namedtuple", cached_namedtuple if fast else collections.namedtuple)  # noqa: B010
    return fast
