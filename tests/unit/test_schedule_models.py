"""The schedule body's models: the OpenAPI schema generated from them says what they accept.

Random bodies (valid and broken) go through both the validator (`parse_schedule_spec`) and the document's
`ScheduleSpec` schema, and both must agree. Rules JSON Schema cannot state (a cron croniter accepts, an IANA zone
name, an instant with an offset, `doNotRunAfter` after `doNotRunUntil`, a duration's bounds) are written in the
schema's description instead; the bodies only break them in ways the schema can see (a wrong type, a string too
long), so any difference is a schema that drifted from the model.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acibatch.openapi import openapi_document
from acibatch.schedules import (
    DURATION,
    MAX_DEADLINE_SECONDS,
    SCHEDULE_FIELDS,
    CatchUp,
    ConcurrencyPolicy,
    ScheduleSpecInvalid,
    parse_schedule_spec,
)
from acibatch.scheduling.request import ScheduleRecurrence, ScheduleRequest

DOCUMENT = openapi_document()
SCHEMAS: dict[str, Any] = DOCUMENT["components"]["schemas"]
VALIDATOR = jsonschema.Draft202012Validator({**SCHEMAS["ScheduleSpec"], "components": DOCUMENT["components"]})
CREATED = datetime(2026, 12, 6, 7, 30, tzinfo=UTC)
JOB = {"image": "python", "taskCount": 2}

# JSON values of the wrong type for every field here; a float with a fraction, as JSON Schema counts 5.0 an integer.
WRONG_TYPE = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from([0, 1]),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False, allow_infinity=False).filter(lambda x: not x.is_integer()),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
FIRING_CRONS = st.sampled_from(["0 2 * * *", "*/5 * * * * *", "@daily", "  0   2 * * 1-5 ", "30 1 1 * *"])
ZONES = st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"])
DURATIONS = st.sampled_from(["PT1H", "P1DT12H", "PT1S", "P366D", "PT90M"])
# Before any `doNotRunAfter` drawn, so the rule across the two is kept.
EARLY = st.sampled_from(["2026-12-24T18:00:00Z", "2027-01-01T00:00:00+02:00", "2026-12-07T00:00:00.5-05:00"])
LATE = st.sampled_from(["2030-01-01T00:00:00Z", "2031-06-30T12:00:00+09:30"])
TOO_LONG = st.text(min_size=41, max_size=60)
# What a lax parser would take for a number or a flag: the model, like the schema, does not.
LOOKS_LIKE = st.sampled_from(["true", "false", "1", "60", "yes"])
# Half of these, however many kinds of wrong type there are (nested one_of strategies are flattened).
NOT_A_NUMBER_OR_FLAG = st.booleans().flatmap(lambda lax: LOOKS_LIKE if lax else WRONG_TYPE)


def _not_a_duration(text: str) -> bool:
    # jsonschema matches a pattern with Python's re.search, where '$' also matches before a final newline.
    return re.search(DURATION.pattern, text) is None


VALID_RECURRENCES = st.one_of(
    st.fixed_dictionaries({"cron": FIRING_CRONS}, optional={"timeZone": st.one_of(ZONES, st.none())}),
    st.fixed_dictionaries({"recurrenceInterval": DURATIONS}, optional={"timeZone": st.one_of(ZONES, st.none())}),
)
VALID_BODIES = st.fixed_dictionaries(
    {"schedule": VALID_RECURRENCES, "jobSpecification": st.just(JOB)},
    optional={
        "doNotRunUntil": st.one_of(EARLY, st.none()),
        "doNotRunAfter": st.one_of(LATE, st.none()),
        "startingDeadlineSeconds": st.one_of(st.integers(1, MAX_DEADLINE_SECONDS), st.none()),
        "concurrencyPolicy": st.sampled_from([str(policy) for policy in ConcurrencyPolicy]),
        "catchUp": st.sampled_from([str(mode) for mode in CatchUp]),
        "suspend": st.booleans(),
    },
)
# One change to a valid body: a field's value (right or wrong), a field left out, or one it does not have.
RECURRENCE_CHANGES = st.one_of(
    st.tuples(st.just("cron"), st.one_of(FIRING_CRONS, WRONG_TYPE, st.just(""), st.text(min_size=201, max_size=210))),
    st.tuples(
        st.just("recurrenceInterval"), st.one_of(DURATIONS, WRONG_TYPE, st.text(max_size=12).filter(_not_a_duration))
    ),
    st.tuples(st.just("timeZone"), st.one_of(ZONES, WRONG_TYPE)),
    st.tuples(st.just("every"), st.integers()),
)
BODY_CHANGES = st.one_of(
    st.tuples(st.just("schedule"), WRONG_TYPE),
    st.tuples(st.just("doNotRunUntil"), st.one_of(TOO_LONG, WRONG_TYPE)),
    st.tuples(st.just("doNotRunAfter"), st.one_of(TOO_LONG, WRONG_TYPE)),
    st.tuples(
        st.just("startingDeadlineSeconds"),
        st.one_of(st.integers(-5, MAX_DEADLINE_SECONDS + 5), NOT_A_NUMBER_OR_FLAG),
    ),
    st.tuples(st.just("concurrencyPolicy"), st.one_of(st.text(max_size=8), WRONG_TYPE)),
    st.tuples(st.just("catchUp"), st.one_of(st.text(max_size=8), WRONG_TYPE)),
    st.tuples(st.just("suspend"), NOT_A_NUMBER_OR_FLAG),
    st.tuples(st.just("jobSpecification"), st.sampled_from([{**JOB, "jobId": "j1"}, None, 3, "job", [JOB]])),
    st.tuples(st.just("keepJobs"), st.booleans()),
)


@st.composite
def bodies(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = draw(VALID_BODIES)
    for _ in range(draw(st.integers(0, 3))):
        target, changes = (body, BODY_CHANGES) if draw(st.booleans()) else (body.get("schedule"), RECURRENCE_CHANGES)
        if not isinstance(target, dict):
            continue
        name, value = draw(changes)
        if draw(st.integers(0, 3)):
            target[name] = value
        else:  # the field left out
            target.pop(name, None)
    return body


def accepted_by_model(body: Any) -> bool:
    try:
        parse_schedule_spec(body, created_at=CREATED)
    except ScheduleSpecInvalid:
        return False
    return True


@settings(max_examples=1500, deadline=None, database=None)
@given(bodies())
def test_the_schema_accepts_exactly_what_the_model_accepts(body: dict[str, Any]) -> None:
    assert accepted_by_model(body) == VALIDATOR.is_valid(body), body


@pytest.mark.parametrize(
    "body",
    [
        {"schedule": {"cron": "0 2 * * *"}, "jobSpecification": JOB},
        {"schedule": {"recurrenceInterval": "PT1H", "timeZone": None}, "jobSpecification": JOB, "suspend": True},
        {
            "schedule": {"cron": "0 2 * * *", "timeZone": "Europe/Berlin"},
            "doNotRunUntil": "2026-12-24T18:00:00Z",
            "doNotRunAfter": None,
            "startingDeadlineSeconds": MAX_DEADLINE_SECONDS,
            "concurrencyPolicy": "Replace",
            "catchUp": "latest",
            "jobSpecification": JOB,
        },
    ],
)
def test_bodies_both_accept(body: dict[str, Any]) -> None:
    assert accepted_by_model(body)
    assert VALIDATOR.is_valid(body)


def test_the_schema_names_the_fields_and_enums_of_the_models() -> None:
    body, recurrence = SCHEMAS["ScheduleSpec"], SCHEMAS["ScheduleRecurrence"]
    assert set(body["properties"]) == ScheduleRequest.request_fields() == SCHEDULE_FIELDS
    assert set(recurrence["properties"]) == ScheduleRecurrence.request_fields()
    assert body["additionalProperties"] is False and recurrence["additionalProperties"] is False
    assert SCHEMAS["ConcurrencyPolicy"]["enum"] == [str(policy) for policy in ConcurrencyPolicy]
    assert SCHEMAS["CatchUp"]["enum"] == [str(mode) for mode in CatchUp]
    deadline = body["properties"]["startingDeadlineSeconds"]["anyOf"][0]
    assert (deadline["minimum"], deadline["maximum"]) == (1, MAX_DEADLINE_SECONDS)
    assert recurrence["properties"]["recurrenceInterval"]["pattern"] == DURATION.pattern


BASE: dict[str, Any] = {"schedule": {"cron": "0 2 * * *"}, "jobSpecification": JOB}
# Values a lax parser would take for another type (a digit string for a number, 1 for true, 5.0 for 5 is left
# out: JSON Schema counts it an integer), and values of plainly wrong types.
FIELD_VALUES = ["true", "60", 1, 0, 1.5, None, [], {}, "", -1, 10**20]
NOT_STRINGS = [value for value in FIELD_VALUES if not isinstance(value, str)]
# A string's content is checked where the schema only says "a string" (see the module's docstring).
FREE_STRINGS = {"doNotRunUntil", "doNotRunAfter"}


@pytest.mark.parametrize(
    "body",
    [
        *(
            {**BASE, name: value}
            for name in sorted(SCHEDULE_FIELDS - {"schedule"})
            for value in (NOT_STRINGS if name in FREE_STRINGS else FIELD_VALUES)
        ),
        *({**BASE, "schedule": {**BASE["schedule"], "timeZone": value}} for value in NOT_STRINGS),
        *({**BASE, "schedule": {"recurrenceInterval": value}} for value in [*FIELD_VALUES, "PT60S"]),
        *({**BASE, "schedule": {"cron": value}} for value in FIELD_VALUES if value not in ("true", "60")),
    ],
    ids=repr,
)
def test_each_field_with_a_value_of_another_type(body: dict[str, Any]) -> None:
    assert accepted_by_model(body) == VALIDATOR.is_valid(body)
