"""An orchestrator's parsed input, kept per worker process and keyed by the input's JSON text.

Every episode replays the orchestrator from its start, so without this each one decodes the input again and
builds the same typed values from it (a task's `TaskStart` with its record and checkpoint; a chunk's job, its
spec and every task's input). The input of an orchestration never changes, and the Python worker is a
long-lived process in Azure as here, so an `InputMemo` parses a given text once and hands later episodes the
same values. Those values must therefore be immutable (frozen dataclasses and models, tuples): an episode that
changed one would change what the next episode replays.

The key is the text the SDK holds (`DurableOrchestrationContext._input`, a JSON string for every input the
extension sends); when it is not a string, the input is parsed as usual and nothing is kept.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import azure.durable_functions as df

Parsed = TypeVar("Parsed")
# Inputs kept per orchestrator: the orchestrations a busy worker replays in turn (a task's is a few KB).
INPUTS_KEPT = 2048
# And at most this much input text per orchestrator: what is kept parsed is several times its text (a 10,000-task
# job's 1 MB input is about 16 MB parsed), so a worker that met many big jobs keeps only the latest few.
INPUT_CHARS_KEPT = 8_000_000


def input_text(context: df.DurableOrchestrationContext) -> str | None:
    """The orchestration's input as the JSON text the host sent, when the SDK holds it as one."""
    text = getattr(context, "_input", None)
    return text if isinstance(text, str) else None


class InputMemo(Generic[Parsed]):
    """`parse(context.get_input())`, once per distinct input text (the latest INPUTS_KEPT of them)."""

    def __init__(self, parse: Callable[[Any], Parsed], kept: int = INPUTS_KEPT, chars: int = INPUT_CHARS_KEPT) -> None:
        self.parse = parse
        self.kept_max = kept
        self.chars_max = chars
        self.chars = 0  # the kept inputs' text, in characters
        self.kept: OrderedDict[str, Parsed] = OrderedDict()
        self.lock = threading.Lock()  # sync orchestrators of one worker may run on several threads

    def __call__(self, context: df.DurableOrchestrationContext) -> Parsed:
        text = input_text(context)
        if text is None:
            return self.parse(context.get_input())
        with self.lock:
            parsed = self.kept.get(text)
            if parsed is not None:
                self.kept.move_to_end(text)
                return parsed
        # Parsed outside the lock (a large input takes a while); a bad input raises here every time, as before.
        parsed = self.parse(context.get_input())
        if len(text) > self.chars_max:
            return parsed  # larger than the whole budget: parsed on every episode, as without the memo
        with self.lock:
            if text not in self.kept:
                self.chars += len(text)
            self.kept[text] = parsed
            while len(self.kept) > self.kept_max or self.chars > self.chars_max:
                dropped, _ = self.kept.popitem(last=False)
                self.chars -= len(dropped)
        return parsed
