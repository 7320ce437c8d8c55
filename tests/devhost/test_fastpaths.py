"""devhost's fast paths give the Durable SDK exactly what its own code would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

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
