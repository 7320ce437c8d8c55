"""devhost's fast paths give the Durable SDK exactly what its own code would."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from azure.durable_functions.models.DurableOrchestrationContext import DurableOrchestrationContext
from azure.durable_functions.models.history.HistoryEvent import HistoryEvent
from azure.durable_functions.models.TaskOrchestrationExecutor import TaskOrchestrationExecutor
from dateutil.parser import parse as dateutil_parse
from hypothesis import given
from hypothesis import strategies as st

from devhost import fastpaths
from devhost.durable import iso

MOMENTS = st.datetimes(min_value=datetime(1971, 1, 2), max_value=datetime(2200, 1, 1))


@given(MOMENTS)
def test_devhost_timestamps_parse_to_what_dateutil_returns(moment: datetime) -> None:
    text = iso(moment.replace(tzinfo=UTC).timestamp())
    fast, slow = fastpaths.parse_timestamp(text), dateutil_parse(text)
    assert fast == slow
    assert fast.replace(tzinfo=None) == slow.replace(tzinfo=None)
    assert fast.utcoffset() == slow.utcoffset() == timedelta(0)
    assert type(fast.tzinfo) is type(slow.tzinfo)


@given(st.sampled_from(["2026-11-25T01:57:46Z", "2026-11-25T01:57:46.1234567Z", "2026-11-25 01:57:46+02:00",
                        "2026-11-25T01:57:46.123456+00:00", "2026-13-25T01:57:46.123456Z"]))  # fmt: skip
def test_other_shapes_are_left_to_dateutil(text: str) -> None:
    try:
        expected = dateutil_parse(text)
    except ValueError:
        expected = None
    if expected is None:
        try:
            fastpaths.parse_timestamp(text)
        except ValueError:
            return
        raise AssertionError(f"{text!r} should not parse")
    assert fastpaths.parse_timestamp(text) == expected


def test_install_switches_the_sdk_parser_and_the_setting_turns_it_off() -> None:
    text = "2026-11-25T01:57:46.123456Z"
    try:
        assert fastpaths.install({fastpaths.SETTING: "0"}) is False
        stock = HistoryEvent(EventType=12, EventId=-1, IsPlayed=False, Timestamp=text).timestamp
        assert fastpaths.install({}) is True
        assert fastpaths._HISTORY_EVENT_MODULE.dt_parse is fastpaths.parse_timestamp
        fast = HistoryEvent(EventType=12, EventId=-1, IsPlayed=False, Timestamp=text).timestamp
        assert fast == stock and fast.isoformat() == stock.isoformat()
    finally:
        fastpaths.install({fastpaths.SETTING: "0"})


def test_the_executor_gets_the_same_payload_mapping_from_one_cached_class() -> None:
    try:
        fastpaths.install({fastpaths.SETTING: "0"})
        stock = TaskOrchestrationExecutor().event_to_SetTaskValuePayload
        assert fastpaths.install({}) is True
        first = TaskOrchestrationExecutor().event_to_SetTaskValuePayload
        second = TaskOrchestrationExecutor().event_to_SetTaskValuePayload
        assert first == second == stock  # the same events, equal (is_success, task_id_key) values
        assert [v._fields for v in first.values()] == [v._fields for v in stock.values()]
        assert {type(v) for v in first.values()} == {type(v) for v in second.values()}  # one class, reused
        assert fastpaths.cached_namedtuple("P", "a b")._fields == ("a", "b")  # other call shapes: stock
    finally:
        fastpaths.install({fastpaths.SETTING: "0"})
    assert {type(v) for v in stock.values()} != {
        type(v) for v in TaskOrchestrationExecutor().event_to_SetTaskValuePayload.values()
    }


def json_values(integers: st.SearchStrategy[int]) -> st.SearchStrategy[object]:
    return st.recursive(
        st.none() | st.booleans() | integers | st.floats(allow_nan=True) | st.text(),
        lambda children: st.lists(children) | st.dictionaries(st.text(), children),
        max_leaves=20,
    )


@given(json_values(st.integers(min_value=-(2**63), max_value=2**64 - 1)))
def test_json_within_64_bit_integers_decodes_to_what_json_loads_returns(value: object) -> None:
    text = json.dumps(value)  # NaN and infinities too: orjson refuses them and json reads them
    fast, stock = fastpaths.json_loads(text), json.loads(text)
    assert json.dumps(fast) == json.dumps(stock)  # equal, NaN included, and in the same key order
    with pytest.raises(json.JSONDecodeError):
        fastpaths.json_loads(text + "}")


@given(json_values(st.integers()), json_values(st.integers()))
def test_a_context_decodes_the_same_whatever_its_payloads_hold(payload: object, data: object) -> None:
    # As devhost builds it: user values are JSON text inside strings, even integers orjson would read as floats.
    events = [
        {"EventType": 0, "EventId": -1, "IsPlayed": True, "Timestamp": "2026-11-25T01:57:46.123456Z",
         "Name": "o", "Version": "", "Input": json.dumps(payload)},
        {"EventType": 15, "EventId": -1, "IsPlayed": False, "Timestamp": "2026-11-25T01:57:46.123456Z",
         "Name": "e", "Input": json.dumps(data)},
    ]  # fmt: skip
    text = json.dumps({"history": events, "instanceId": "i", "input": json.dumps(payload), "upperSchemaVersion": 1})
    assert json.dumps(fastpaths.json_loads(text)) == json.dumps(json.loads(text))


def test_install_switches_the_context_json_and_contexts_decode_the_same() -> None:
    moment = "2026-11-25T01:57:46.123456Z"
    history = [{"EventType": 12, "EventId": -1, "IsPlayed": False, "Timestamp": moment},
               {"EventType": 0, "EventId": -1, "IsPlayed": False, "Timestamp": moment, "Name": "o", "Version": "",
                "Input": '{"n": 1e400, "big": -123456789012345678901234567890}'}]  # fmt: skip
    text = json.dumps({"history": history, "instanceId": "i", "isReplaying": False, "parentInstanceId": None,
                       "input": {"n": 1}, "upperSchemaVersion": 1})  # fmt: skip
    try:
        assert fastpaths.install({}) is True
        assert fastpaths._CONTEXT_MODULE.json.loads is fastpaths.json_loads
        fast = DurableOrchestrationContext.from_json(text)
        fastpaths.install({fastpaths.SETTING: "0"})
        assert fastpaths._CONTEXT_MODULE.json is json
        stock = DurableOrchestrationContext.from_json(text)
    finally:
        fastpaths.install({fastpaths.SETTING: "0"})
    assert fast.get_input(expected_type=dict) == stock.get_input(expected_type=dict) == {"n": 1}
    assert [vars(e) for e in fast.histories] == [vars(e) for e in stock.histories]


def test_a_timestamp_parsed_again_is_the_kept_value() -> None:
    text = "2026-11-25T01:57:46.654321Z"
    first = fastpaths.parse_timestamp(text)
    assert fastpaths.parse_timestamp(text) is first  # the same (immutable) datetime, not parsed again
    assert first == dateutil_parse(text)
    assert fastpaths.parse_timestamp("2026-11-25T01:57:46.65432Z") == dateutil_parse("2026-11-25T01:57:46.65432Z")


def test_the_strict_typing_setting_is_read_when_the_fast_paths_are_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    codec = fastpaths._CODEC_MODULE
    try:
        monkeypatch.setenv("AZURE_FUNCTIONS_DURABLE_STRICT_TYPING", "1")
        fastpaths.install({})
        monkeypatch.setenv("AZURE_FUNCTIONS_DURABLE_STRICT_TYPING", "0")
        assert codec._is_strict_mode() is True  # as the worker started
        fastpaths.install({})
        assert codec._is_strict_mode() is False
        fastpaths.install({fastpaths.SETTING: "0"})
        monkeypatch.setenv("AZURE_FUNCTIONS_DURABLE_STRICT_TYPING", "yes")
        assert codec._is_strict_mode() is True  # stock: read on every call
    finally:
        fastpaths.install({fastpaths.SETTING: "0"})
