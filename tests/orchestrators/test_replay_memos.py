"""What the orchestrators keep between episodes of a worker (issue 29): parsed inputs and history timestamps.

Both stand in for work the SDK and the orchestrators would repeat on every episode, so both must hand back
exactly what that work returns, and what they keep must never change while an orchestration replays."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from azure.durable_functions.models.DurableOrchestrationContext import DurableOrchestrationContext
from azure.durable_functions.models.history.HistoryEvent import HistoryEvent
from dateutil.parser import parse as dateutil_parse

from acibatch.checkpoint import TaskStart
from acibatch.plan import JobInput
from orchestrators import inputmemo, job, task, timestamps
from orchestrators.inputmemo import InputMemo
from tests.golden.replay import replay
from tests.golden.test_golden_replay import goldens

# The SDK's one-time advisory on the first input it decodes in a process (the harness ignores it the same way).
pytestmark = pytest.mark.filterwarnings("ignore:azure.functions df_loads was called without expected_type")
# What the extension sends: .NET's round-trip format with up to seven fraction digits, none when whole seconds.
EXTENSION_TIMESTAMPS = (
    "2026-01-05T09:00:00.1234567Z",
    "2026-01-05T09:00:00Z",
    "2026-01-05T09:00:00.12Z",
    "2026-01-05T09:00:00.1234567+00:00",
)


def context_with_input(input_value: Any) -> DurableOrchestrationContext:
    """The SDK's own context, built from the JSON the host sends (the input travels as JSON text)."""
    started = {"EventType": 12, "EventId": -1, "IsPlayed": False, "Timestamp": "2026-01-05T09:00:00.000000Z"}
    body = {
        "history": [started],  # the SDK needs the episode's OrchestratorStarted
        "input": None if input_value is None else json.dumps(input_value),
        "instanceId": "memo-test",
        "isReplaying": False,
        "parentInstanceId": None,
        "upperSchemaVersion": 1,
        "upperSchemaVersionNew": 2,
    }
    return DurableOrchestrationContext.from_json(json.dumps(body))


class CountingParse:
    def __init__(self) -> None:
        self.calls: list[Any] = []

    def __call__(self, data: Any) -> tuple[str, ...]:
        self.calls.append(data)
        if data.get("bad"):
            raise ValueError("bad input")
        return tuple(sorted(data))


def test_an_input_text_is_parsed_once_and_each_episode_gets_the_same_value() -> None:
    parse = CountingParse()
    memo = InputMemo(parse)
    first = memo(context_with_input({"b": 1, "a": 2}))
    again = memo(context_with_input({"b": 1, "a": 2}))
    assert first == ("a", "b") and again is first
    assert parse.calls == [{"b": 1, "a": 2}]  # the second episode decoded and parsed nothing


def test_another_input_is_parsed_on_its_own_and_the_oldest_is_let_go() -> None:
    parse = CountingParse()
    memo = InputMemo(parse, kept=2)
    for value in ({"a": 1}, {"b": 1}, {"c": 1}):
        memo(context_with_input(value))
    assert list(memo.kept) == [json.dumps({"b": 1}), json.dumps({"c": 1})]
    memo(context_with_input({"a": 1}))
    assert len(parse.calls) == 4  # {"a": 1} had been let go, so it was parsed again


def test_kept_inputs_are_bounded_by_their_text_and_one_over_the_budget_is_not_kept() -> None:
    """Big jobs' inputs are kept parsed at many times their size: the memo lets the oldest go by text length."""
    parse = CountingParse()
    budget = len(json.dumps({"k": "x" * 100})) * 2 + 1  # room for two such inputs
    memo = InputMemo(parse, chars=budget)
    for key in "abc":
        memo(context_with_input({key: "x" * 100}))
    assert list(memo.kept) == [json.dumps({"b": "x" * 100}), json.dumps({"c": "x" * 100})]
    assert memo.chars == sum(len(text) for text in memo.kept) <= budget
    memo(context_with_input({"big": "x" * budget}))
    assert json.dumps({"big": "x" * budget}) not in memo.kept and memo.chars <= budget


def test_a_bad_input_raises_on_every_episode_and_is_never_kept() -> None:
    parse = CountingParse()
    memo = InputMemo(parse)
    for _ in range(2):
        with pytest.raises(ValueError, match="bad input"):
            memo(context_with_input({"bad": True}))
    assert len(parse.calls) == 2 and not memo.kept


def test_an_input_the_sdk_holds_as_no_text_is_parsed_as_usual() -> None:
    context = context_with_input(None)
    assert inputmemo.input_text(context) is None
    memo: InputMemo[str] = InputMemo(lambda data: f"parsed {data}")
    assert memo(context) == "parsed None" and not memo.kept


@pytest.mark.parametrize("scenario", ["success", "retry", "timeout", "workflow", "agent", "cancel"])
def test_kept_inputs_are_unchanged_after_replaying_whole_lives(scenario: str) -> None:
    """An episode that changed a kept value would change what later episodes replay: after whole recorded lives
    every kept task start, chunk plan and job plan still equals a fresh parse of its text."""
    for generation in goldens()[scenario]["generations"]:
        assert replay(generation).verdict is None
    for memo, parse in (
        (task.TASK_STARTS, TaskStart.from_input),
        (job.CHUNK_PLANS, job.ChunkPlan.from_input),
        (job.JOB_PLANS, lambda data: job.JobPlan(JobInput.from_dict(data))),
    ):
        assert memo.kept, "the replay went through the memo"
        for text, kept in memo.kept.items():
            assert kept == parse(json.loads(text))


def test_the_timestamp_cache_returns_what_dateutil_returns() -> None:
    parse = timestamps.cached(dateutil_parse)
    for text in EXTENSION_TIMESTAMPS:
        parsed = parse(text)
        assert parsed == dateutil_parse(text) and parsed.isoformat() == dateutil_parse(text).isoformat()
        assert parse(text) is parsed  # the same immutable value, not parsed again
    assert parse("2026-01-05T09:00:00.1234567Z") == datetime(2026, 1, 5, 9, 0, 0, 123456, tzinfo=UTC)
    with pytest.raises(ValueError):
        parse("not a time")


def test_the_extensions_shape_reads_as_dateutil_reads_it_and_other_texts_go_to_dateutil() -> None:
    fallback: list[str] = []

    def counting_dateutil(text: str) -> datetime:
        fallback.append(text)
        return dateutil_parse(text)

    parse = timestamps.extension_shape_or(counting_dateutil)
    assert fallback == [timestamps.ZULU_SAMPLE]  # asked once what "Z" means to it
    fallback.clear()
    shaped = [f"2026-01-05T09:00:00.{'1234567'[:digits]}Z" for digits in range(1, 8)] + [
        "2026-01-05T09:00:00Z",
        "2024-02-29T23:59:59.9999999Z",
        "2026-12-31T00:00:00.0000001Z",
        "0001-01-01T00:00:00Z",
    ]
    for text in shaped:
        parsed, expected = parse(text), dateutil_parse(text)
        assert parsed == expected and repr(parsed) == repr(expected), text
    assert fallback == []
    others = ["2026-01-05T09:00:00.1234567+00:00", "2026-01-05 09:00:00Z", "2026-01-05T09:00:00.12345678Z"]
    for text in others:
        assert parse(text) == dateutil_parse(text)
    assert fallback == others
    # A date that cannot be: dateutil says why, as it would have without the fast path.
    with pytest.raises(ValueError) as error:
        parse("2026-02-30T09:00:00Z")
    with pytest.raises(ValueError) as stock_error:
        dateutil_parse("2026-02-30T09:00:00Z")
    assert str(error.value) == str(stock_error.value)


def test_installing_wraps_the_sdks_parser_once_and_events_read_the_same_time() -> None:
    module: Any = timestamps.HISTORY_EVENT_MODULE
    before = module.dt_parse
    try:
        module.dt_parse = dateutil_parse  # the stock SDK, as a worker without devhost's fast paths has it
        stock = [
            HistoryEvent(EventType=12, EventId=-1, IsPlayed=False, Timestamp=t).timestamp for t in EXTENSION_TIMESTAMPS
        ]
        assert timestamps.install() is True
        assert timestamps.install() is False  # wrapped once, however often the app is imported
        cached = [
            HistoryEvent(EventType=12, EventId=-1, IsPlayed=True, Timestamp=t).timestamp for t in EXTENSION_TIMESTAMPS
        ]
        assert cached == stock and [c.tzinfo for c in cached] == [s.tzinfo for s in stock]
    finally:
        module.dt_parse = before
