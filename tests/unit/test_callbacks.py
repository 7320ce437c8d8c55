"""Callback body validation and event payload decoding."""

import json

import pytest

from acibatch.callbacks import (
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
