"""Fixed costs the Durable SDK pays on every orchestrator episode, paid once per worker process instead.

The Python worker has no extended sessions: every episode replays the whole history with a fresh executor.
Two parts of that repeat work whose answer cannot change during a worker's life:

- **A class per episode.** `TaskOrchestrationExecutor.__init__` calls `collections.namedtuple` for the same
  two-field class every time, which compiles a new class (about a tenth of replaying a task generation's episode
  with the stock SDK). `install` swaps the executor module's `namedtuple` for one that hands back the class made
  the first time for the same name and fields, so the executor builds an identical mapping; calls of any other
  shape go to `collections.namedtuple`.
- **The strict-typing setting.** The codec under every payload the SDK encodes or decodes (`azure.functions`
  `df_dumps` / `df_loads`, a few dozen calls an episode) reads `AZURE_FUNCTIONS_DURABLE_STRICT_TYPING` from the
  environment each time. An app setting is fixed for a worker's life (Azure restarts the workers when one
  changes), so `install` reads it once.

Both replace module globals of internals, checked on azure-functions-durable 1.7 (requirements.txt pins that minor)
and azure-functions 1.26 (pinned only below 2, as the host's worker may bring a newer 1.x): each is looked up by name
and left alone when it is missing or not the stock function, and tests/orchestrators/test_episode_cost.py checks
they are there and that replays answer the same. Each is
installed only over the stock value, so devhost's own fast paths (`devhost.fastpaths`, which a devhost worker
installs before it imports the app) stay as they are, and installing twice changes nothing.

(orjson for the context's JSON was measured too and left out: it reads integers beyond 64 bits as floats, and
checking a context's text for them costs what orjson saves.)
"""

from __future__ import annotations

import collections
import functools
import importlib
from collections.abc import Callable
from typing import Any

# The modules themselves (the package re-exports the class under the module's name). Without one, `install`
# leaves that part as it is.
try:
    EXECUTOR_MODULE: Any = importlib.import_module("azure.durable_functions.models.TaskOrchestrationExecutor")
except ImportError:  # pragma: no cover - only with an SDK this was not tested on
    EXECUTOR_MODULE = None
try:
    CODEC_MODULE: Any = importlib.import_module("azure.functions._durable_functions")
except ImportError:  # pragma: no cover - only with an azure-functions this was not tested on
    CODEC_MODULE = None
STRICT_MODE_NAME = "_is_strict_mode"


@functools.cache
def _namedtuple_class(typename: str, field_names: tuple[str, ...]) -> Any:
    return collections.namedtuple(typename, field_names)


def reused_namedtuple(typename: str, field_names: Any, **options: Any) -> Any:
    """`collections.namedtuple`; the same class again for the same name and field names given as a sequence."""
    if options or isinstance(field_names, str):
        return collections.namedtuple(typename, field_names, **options)
    return _namedtuple_class(typename, tuple(field_names))


def strict_mode_as_started(stock: Callable[[], bool]) -> Callable[[], bool]:
    """The codec's `_is_strict_mode`, answering from now on what the environment says now (`__wrapped__` is the
    stock function, for whoever needs it back)."""
    strict = stock()

    def is_strict_mode() -> bool:
        return strict

    is_strict_mode.__wrapped__ = stock  # type: ignore[attr-defined]
    return is_strict_mode


def _is_stock_strict_mode(function: Any) -> bool:
    return (
        callable(function)
        and getattr(function, "__name__", None) == STRICT_MODE_NAME
        and getattr(function, "__module__", None) == CODEC_MODULE.__name__
    )


def install() -> list[str]:
    """Put both in place where the stock ones still are; the names of those it put in place."""
    installed = []
    if EXECUTOR_MODULE is not None and getattr(EXECUTOR_MODULE, "namedtuple", None) is collections.namedtuple:
        EXECUTOR_MODULE.namedtuple = reused_namedtuple
        installed.append("namedtuple")
    stock = getattr(CODEC_MODULE, STRICT_MODE_NAME, None)
    if CODEC_MODULE is not None and stock is not None and _is_stock_strict_mode(stock):
        setattr(CODEC_MODULE, STRICT_MODE_NAME, strict_mode_as_started(stock))
        installed.append(STRICT_MODE_NAME)
    return installed
