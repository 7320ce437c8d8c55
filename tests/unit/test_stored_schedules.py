"""Schedules as the release before the pydantic models (c32184a) stored and showed them: schedule entities in
flight hold this JSON across a deploy. The fixture was written by that release's own code, from the bodies in it:
each loads and is written back byte for byte, the same body validated today is stored the same, and the loaded
schedule fires when it did then."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from acibatch.schedules import ScheduleSpec, parse_schedule_spec

FIXTURE: dict[str, Any] = json.loads((Path(__file__).parent / "fixtures" / "schedules_c32184a.json").read_text())
CREATED = datetime.fromisoformat(FIXTURE["createdAt"])
NAMES = sorted(FIXTURE["schedules"])


def compact(value: Any) -> bytes:
    """As the Durable SDK and the extension store it: compact JSON, keys in the order written."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


@pytest.mark.parametrize("name", NAMES)
def test_a_stored_schedule_is_written_back_byte_for_byte(name: str) -> None:
    stored = FIXTURE["schedules"][name]["stored"]
    assert compact(ScheduleSpec.from_dict(stored).to_dict()) == compact(stored)


@pytest.mark.parametrize("name", NAMES)
def test_the_same_body_is_stored_and_shown_as_before(name: str) -> None:
    case = FIXTURE["schedules"][name]
    spec = parse_schedule_spec(case["body"], created_at=CREATED)
    assert compact(spec.to_dict()) == compact(case["stored"])
    assert compact(spec.public()) == compact(case["public"])
    assert compact(ScheduleSpec.from_dict(case["stored"]).public()) == compact(case["public"])


@pytest.mark.parametrize("name", NAMES)
def test_a_loaded_schedule_fires_when_it_did(name: str) -> None:
    case = FIXTURE["schedules"][name]
    recurrence = ScheduleSpec.from_dict(case["stored"]).recurrence
    assert [moment.isoformat() for moment in recurrence.fire_times(CREATED, 3)] == case["nextRuns"]


def test_the_fixture_covers_every_stored_field_off_its_default() -> None:
    """A field a model dropped would only show if some fixture sets it."""
    specs = [ScheduleSpec.from_dict(case["stored"]) for case in FIXTURE["schedules"].values()]
    for model, values in (
        (ScheduleSpec, specs),
        (type(specs[0].recurrence), [spec.recurrence for spec in specs]),
    ):
        for name, field in model.model_fields.items():
            if not field.is_required():
                default = field.get_default(call_default_factory=True)
                assert any(getattr(value, name) != default for value in values), f"{model.__name__}.{name}"
    assert any(spec.secure_env_names for spec in specs)
