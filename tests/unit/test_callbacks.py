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
    FileFailure,
    decode_event_payload,
    parse_callback,
)
from acibatch.records import FailureCategory


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


STATUSES = "the string 'succeeded', 'failed', 'progress' or 'completed'"


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
    assert path == "status" and message.startswith(f"must be {STATUSES}, not ")


def test_a_missing_status_says_it_is_required() -> None:
    with pytest.raises(CallbackInvalid) as caught:
        parse_callback({"exitCode": 0}, attempt=1)
    assert caught.value.errors == [("status", f"required: {STATUSES}")]


def test_nesting_is_limited_without_recursion() -> None:
    assert parse_callback({"status": "progress", "progress": nested(MAX_JSON_DEPTH)}, attempt=1).progress
    # Far deeper than Python's recursion limit: the walk must not raise RecursionError.
    for depth in (MAX_JSON_DEPTH + 1, 50_000):
        with pytest.raises(CallbackInvalid) as caught:
            parse_callback({"status": "progress", "result": nested(depth)}, attempt=1)
        assert caught.value.errors[0][0] == "result" and "levels deep" in caught.value.errors[0][1]


FIELDS = ["status", "exitCode", "message", "progress", "result", "outputs", "failure", "x"]
# Values near the agent report's shapes, so its rules are reached and not only its type checks.
AGENT_VALUES = (
    st.sampled_from(["completed", "succeeded"])
    | st.fixed_dictionaries({"count": st.integers(-1, 3), "bytes": st.integers(-1, 10**20)})
    | st.fixed_dictionaries(
        {"category": st.sampled_from(["preProcessingError", "fileUploadError", "other"])},
        optional={"message": st.none() | st.text(max_size=5) | st.integers(), "file": st.text(max_size=5)},
    )
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.sampled_from([10**400, 2**31]) | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None, database=None)
@given(st.dictionaries(st.sampled_from(FIELDS), JSON_VALUES | AGENT_VALUES) | JSON_VALUES)
def test_any_json_is_either_a_report_or_a_list_of_field_errors(body: object) -> None:
    try:
        report = parse_callback(body, attempt=1)
    except CallbackInvalid as invalid:
        assert invalid.errors
        for path, message in invalid.errors:
            # The path names a known field, an unknown one the body holds, or the body itself.
            known = {*FIELDS, "body", "failure.category", "failure.message", "failure.file"}
            assert path in known or path in body or path.removeprefix("failure.") in body.get("failure")  # type: ignore[union-attr,operator]
            assert message
    else:
        assert CallbackReport.from_event(json.dumps(report.to_dict())) == report


# -- the acibatch agent's report ------------------------------------------------------------------------------


def test_a_task_report_carries_exactly_the_keys_it_always_had() -> None:
    # As a golden history recorded it (tests/golden/histories/success.json): the event's bytes must not change.
    report = parse_callback({"status": "succeeded", "exitCode": 0, "result": {"answer": 42}}, attempt=1)
    recorded = '{"status": "succeeded", "attempt": 1, "exitCode": 0, "message": null, "progress": null, "result": {"answer": 42}}'  # noqa: E501
    assert json.dumps(report.to_dict()) == recorded


def test_the_agents_completed_report_round_trips_through_the_event() -> None:
    body = {
        "status": "completed",
        "exitCode": 0,
        "outputs": {"count": 3, "bytes": 1234},
        "failure": {"category": "fileUploadError", "message": "upload refused (403)", "file": "out/a.txt"},
    }
    report = parse_callback(body, attempt=2)
    assert report.status is CallbackStatus.COMPLETED
    assert report.outputs == {"count": 3, "bytes": 1234}
    assert report.failure == FileFailure(FailureCategory.FILE_UPLOAD_ERROR, "upload refused (403)", "out/a.txt")
    assert report.to_dict()["failure"] == body["failure"]
    assert CallbackReport.from_event(json.dumps(report.to_dict())) == report
    clean = parse_callback({"status": "completed", "exitCode": None, "outputs": None, "failure": None}, attempt=1)
    assert (clean.exit_code, clean.outputs, clean.failure) == (None, None, None)


def test_a_failure_message_never_carries_a_sas() -> None:
    message = "GET https://acct.blob.core.windows.net/acb-t/inputs/x.csv?sv=2024&sig=SECRET failed: 404"
    report = parse_callback(
        {"status": "completed", "failure": {"category": "preProcessingError", "message": message, "file": "x.csv"}}, 1
    )
    assert report.failure is not None and report.failure.message is not None
    assert "SECRET" not in json.dumps(report.to_dict())
    assert report.failure.message == "GET https://acct.blob.core.windows.net/acb-t/inputs/x.csv?... failed: 404"


def test_the_error_a_task_shows_names_the_file() -> None:
    assert FileFailure(FailureCategory.PRE_PROCESSING_ERROR, "download failed: 404", "in/a.csv").describe() == (
        "download failed: 404 (file in/a.csv)"
    )
    assert FileFailure(FailureCategory.FILE_UPLOAD_ERROR, "refused (403)", None).describe() == "refused (403)"
    assert FileFailure(FailureCategory.FILE_UPLOAD_ERROR, None, "b.txt").describe() == (
        "an output file could not be uploaded (file b.txt)"
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"status": "succeeded", "outputs": {"count": 1, "bytes": 1}}, [("outputs", "is only part of the agent's 'completed' report")]),  # noqa: E501
        ({"status": "progress", "failure": None}, [("failure", "is only part of the agent's 'completed' report")]),
        ({"status": "completed", "result": 1, "message": "m"}, [("message", "is not part of the agent's 'completed' report"), ("result", "is not part of the agent's 'completed' report")]),  # noqa: E501
        ({"status": "completed", "outputs": {"count": -1, "bytes": 0}}, [("outputs", 'must be an object like {"count": 3, "bytes": 1234} (whole numbers, 0 or more)')]),  # noqa: E501
        ({"status": "completed", "outputs": {"count": 1}}, [("outputs", 'must be an object like {"count": 3, "bytes": 1234} (whole numbers, 0 or more)')]),  # noqa: E501
        ({"status": "completed", "failure": "boom"}, [("failure", 'must be null or an object like {"category": "fileUploadError", "message": "...", "file": "..."}')]),  # noqa: E501
        ({"status": "completed", "failure": {"category": "taskFailure", "file": 3, "why": 1}}, [("failure.why", "unknown field; allowed fields are category, file, message"), ("failure.category", "must be the string 'preProcessingError' or 'fileUploadError'"), ("failure.file", "must be null or a string of at most 1024 characters")]),  # noqa: E501
    ],
)  # fmt: skip
def test_a_report_with_the_other_senders_fields_or_a_bad_shape_says_what_to_fix(
    body: dict[str, object], expected: list[tuple[str, str]]
) -> None:
    with pytest.raises(CallbackInvalid) as caught:
        parse_callback(body, attempt=1)
    assert caught.value.errors == expected
