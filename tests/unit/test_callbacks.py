"""Callback body validation and event payload decoding."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acibatch.callbacks import (
    MAX_JSON_DEPTH,
    MAX_RESULT_BYTES,
    CallbackInvalid,
    CallbackReport,
    CallbackStatus,
    decode_event_payload,
    parse_callback,
)


def test_valid_report_keeps_the_authenticated_attempt() -> None:
    report = parse_callback({"status": "succeeded", "exitCode": 0, "result": {"sum": 10}}, attempt=2)
    assert report == CallbackReport(CallbackStatus.SUCCEEDED, 2, 0, None, None, {"sum": 10})


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(CallbackInvalid) as caught:
        parse_callback({"status": "done", "exitCode": "0", "message": 5, "extra": 1}, attempt=1)
    assert [path for path, _ in caught.value.errors] == ["extra", "status", "exitCode", "message"]


@pytest.mark.parametrize(
    "body",
    [
        [],
        "succeeded",
        {"status": "succeeded", "exitCode": True},
        {"status": "succeeded", "exitCode": 2**31},
        {"status": "progress", "progress": float("nan")},
        {"status": "succeeded", "result": {"deep": [float("inf")]}},
        {"status": "succeeded", "result": "x" * MAX_RESULT_BYTES},
        {"status": "failed", "message": "m" * 2001},
    ],
)
def test_invalid_bodies_are_refused(body: object) -> None:
    with pytest.raises(CallbackInvalid):
        parse_callback(body, attempt=1)


def test_event_payload_survives_the_python_clients_double_encoding() -> None:
    report = CallbackReport(CallbackStatus.FAILED, 3, 2, "bad", None, None)
    assert CallbackReport.from_event(json.dumps(report.to_dict())) == report
    assert CallbackReport.from_event(report.to_dict()) == report
    assert CallbackReport.from_event("not json") is None
    assert CallbackReport.from_event({"status": "other", "attempt": 1}) is None
    assert decode_event_payload("{") == "{"


def nested(depth: int) -> object:
    value: object = 1
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


@pytest.mark.parametrize("status", [{}, {"status": "succeeded"}, [], ["succeeded"], None, 1, True, "done"])
def test_a_status_of_the_wrong_type_names_the_field_and_the_allowed_values(status: object) -> None:
    with pytest.raises(CallbackInvalid) as caught:
        parse_callback({"status": status}, attempt=1)
    [(path, message)] = caught.value.errors
    assert path == "status" and message.startswith("must be the string 'succeeded', 'failed' or 'progress', not ")


def test_a_missing_status_says_it_is_required() -> None:
    with pytest.raises(CallbackInvalid) as caught:
        parse_callback({"exitCode": 0}, attempt=1)
    assert caught.value.errors == [("status", "required: the string 'succeeded', 'failed' or 'progress'")]


def test_nesting_is_limited_without_recursion() -> None:
    assert parse_callback({"status": "progress", "progress": nested(MAX_JSON_DEPTH)}, attempt=1).progress
    # Far deeper than Python's recursion limit: the walk must not raise RecursionError.
    for depth in (MAX_JSON_DEPTH + 1, 50_000):
        with pytest.raises(CallbackInvalid) as caught:
            parse_callback({"status": "progress", "result": nested(depth)}, attempt=1)
        assert caught.value.errors[0][0] == "result" and "levels deep" in caught.value.errors[0][1]


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.sampled_from([10**400, 2**31]) | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None, database=None)
@given(st.dictionaries(st.sampled_from(["status", "exitCode", "message", "progress", "result", "x"]), JSON_VALUES)
       | JSON_VALUES)  # fmt: skip
def test_any_json_is_either_a_report_or_a_list_of_field_errors(body: object) -> None:
    try:
        report = parse_callback(body, attempt=1)
    except CallbackInvalid as invalid:
        assert invalid.errors
        for path, message in invalid.errors:
            # The path names a known field, an unknown one the body holds, or the body itself.
            assert path in {"status", "exitCode", "message", "progress", "result", "body"} or path in body  # type: ignore[operator]
            assert message
    else:
        assert CallbackReport.from_event(json.dumps(report.to_dict())) == report
