"""Fast paths inside the Durable SDK's replay (on by default; `DEVHOST_SDK_FAST_PATHS=0` turns them all off).

The SDK rebuilds its whole view of an orchestration on every episode, and four fixed costs of that dominate
a short orchestration's replay here; each has a drop-in replacement that returns what the SDK's own code would:

- **Timestamps.** Every history event parses its `Timestamp` with dateutil's general-purpose parser (~40 us
  each, every episode). devhost writes every timestamp in one fixed shape (`2026-11-25T01:57:46.123456Z`),
  which `datetime.fromisoformat` reads ~30x faster; and since every episode parses the same past events
  again, those are kept (a bounded cache; datetimes are immutable). `parse_timestamp` returns what dateutil
  would (same fields, an equal tzinfo: tests compare them) and hands any other shape to dateutil.
- **A class per episode.** `TaskOrchestrationExecutor.__init__` defines a `namedtuple` class on every episode
  (`collections.namedtuple` compiles a class each call: a fifth of a worker's CPU on HelloCities5). The
  module's `namedtuple` is swapped for one that returns the same class for the same name and fields, so the
  executor gets an identical mapping without rebuilding the class.
- **The context's JSON.** Each episode starts by decoding the whole context (the history) with `json.loads`.
  The context module's `json` is swapped for the same module with a `loads` that uses orjson (a few times
  faster) and hands `json.loads` whatever orjson refuses. Together with the timestamp cache, a HelloCities5
  orchestration's six replays cost 0.81-0.94 ms instead of 1.07-1.11 ms (stock SDK: 6.4 ms).
- **The strict-typing setting.** Every payload the SDK encodes or decodes (`azure.functions` `df_dumps` /
  `df_loads`) first reads `AZURE_FUNCTIONS_DURABLE_STRICT_TYPING` from the environment, a few percent of a
  replay. It is read once, when the worker starts, as Azure's app settings are fixed for a worker's life
  (changing one restarts it).

Each swaps a module global of the SDK, in the language workers only, so orchestrator code cannot tell the
difference; Azure's Python worker does not do this: it changes devhost's speed, nothing else. The bench
measures devhost with the SDK stock too.
"""

from __future__ import annotations

import collections
import functools
import importlib
import inspect
import json
import os
import types
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import orjson
from dateutil.parser import parse as dateutil_parse

SETTING = "DEVHOST_SDK_FAST_PATHS"
_SAMPLE = "2026-11-25T01:57:46.123456Z"
# dateutil reads "Z" as tzutc(), or as tzlocal() when the machine's own zone is called UTC: take its choice.
_ZULU = dateutil_parse(_SAMPLE).tzinfo
# The package re-exports the classes under the modules' names, so fetch the modules themselves.
_HISTORY_EVENT_MODULE = importlib.import_module("azure.durable_functions.models.history.HistoryEvent")
_EXECUTOR_MODULE = importlib.import_module("azure.durable_functions.models.TaskOrchestrationExecutor")
_CONTEXT_MODULE = importlib.import_module("azure.durable_functions.models.DurableOrchestrationContext")
_CODEC_MODULE = importlib.import_module("azure.functions._durable_functions")
# A private helper of azure-functions (1.26 has it): if a later version drops it, that fast path is skipped.
# The app may have put its own in front of it already (orchestrators.episodecost keeps the stock one as __wrapped__).
_STOCK_IS_STRICT_MODE: Callable[[], bool] | None = getattr(_CODEC_MODULE, "_is_strict_mode", None)
if _STOCK_IS_STRICT_MODE is not None:
    _STOCK_IS_STRICT_MODE = inspect.unwrap(_STOCK_IS_STRICT_MODE)
TIMESTAMPS_KEPT = 16_384  # a few MB; covers the histories of the orchestrations a busy worker replays in turn


def parse_timestamp(text: str) -> datetime:
    """What `dateutil.parser.parse(text)` returns, quickly for devhost's own timestamp shape."""
    if len(text) == len(_SAMPLE) and text[-1] == "Z" and text[10] == "T" and text[19] == ".":
        try:
            return _devhost_timestamp(text)
        except ValueError:
            pass
    return dateutil_parse(text)


@functools.lru_cache(maxsize=TIMESTAMPS_KEPT)
def _devhost_timestamp(text: str) -> datetime:
    return datetime.fromisoformat(text[:-1]).replace(tzinfo=_ZULU)


@functools.cache
def _namedtuple_class(typename: str, field_names: tuple[str, ...]) -> Any:
    return collections.namedtuple(typename, field_names)


def cached_namedtuple(typename: str, field_names: Any, **options: Any) -> Any:
    """`collections.namedtuple`, made once per (name, fields) when called the plain way the SDK calls it."""
    if options or isinstance(field_names, str):
        return collections.namedtuple(typename, field_names, **options)
    return _namedtuple_class(typename, tuple(field_names))


def json_loads(text: str, **options: Any) -> Any:
    """What `json.loads` returns for a context devhost built; orjson reads it when it can.

    The two differ only on integers beyond 64 bits, which orjson reads as floats. A context's own numbers are
    devhost's small event fields; user values (inputs, results, event data) sit in it as JSON *strings*, which
    the SDK decodes later with `json`, so they never reach orjson as numbers. What orjson refuses (NaN,
    infinities) and calls with options go to `json.loads`.
    """
    if not options:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text, **options)


def _json_with_fast_loads() -> types.ModuleType:
    module = types.ModuleType("json", json.__doc__)
    module.__dict__.update({name: value for name, value in vars(json).items() if not name.startswith("__")})
    module.loads = json_loads  # type: ignore[attr-defined]
    return module


FAST_JSON = _json_with_fast_loads()


def context_loads(text: str) -> Any:
    """Decode an orchestration context as the SDK's context module does now (with orjson when these are on)."""
    return _CONTEXT_MODULE.json.loads(text)


def strict_mode_as_started(stock: Callable[[], bool]) -> Callable[[], bool]:
    """The codec's `_is_strict_mode`, answering what the environment says now, from now on."""
    strict = stock()

    def is_strict_mode() -> bool:
        return strict

    is_strict_mode.__wrapped__ = stock  # type: ignore[attr-defined]  # what inspect.unwrap hands back
    return is_strict_mode


def enabled(environ: Mapping[str, str] | None = None) -> bool:
    values = os.environ if environ is None else environ
    return values.get(SETTING, "1").strip() != "0"


def install(environ: Mapping[str, str] | None = None) -> bool:
    """Use the fast paths in the SDK unless the setting says 0 (then put the stock ones back); True when on."""
    fast = enabled(environ)
    setattr(_HISTORY_EVENT_MODULE, "dt_parse", parse_timestamp if fast else dateutil_parse)  # noqa: B010
    setattr(_EXECUTOR_MODULE, "namedtuple", cached_namedtuple if fast else collections.namedtuple)  # noqa: B010
    setattr(_CONTEXT_MODULE, "json", FAST_JSON if fast else json)  # noqa: B010
    if _STOCK_IS_STRICT_MODE is not None:
        strict_mode = strict_mode_as_started(_STOCK_IS_STRICT_MODE) if fast else _STOCK_IS_STRICT_MODE
        setattr(_CODEC_MODULE, "_is_strict_mode", strict_mode)  # noqa: B010
    return fast
