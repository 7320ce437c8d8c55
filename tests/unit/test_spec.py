"""Job spec validation: normalization, ACI limits, and every error reported at once with its path."""

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acibatch.spec import JOB_FIELDS, MAX_TASKS, Cleanup, JobSpec, JobSpecInvalid, Priority, parse_job_spec

BASE: dict[str, Any] = {"image": "myregistry.azurecr.io/team/worker:1.2", "command": ["python3", "main.py"]}


def errors_of(data: object) -> dict[str, str]:
    with pytest.raises(JobSpecInvalid) as caught:
        parse_job_spec(data)
    return {error.path: error.message for error in caught.value.errors}


def test_minimal_spec_gets_documented_defaults() -> None:
    spec = parse_job_spec({**BASE, "taskCount": 3})
    assert [task.id for task in spec.tasks] == ["0", "1", "2"]
    assert (spec.cpu, spec.memory_gb, spec.max_attempts, spec.task_timeout_seconds) == (1.0, 1.5, 3, 3600)
    assert spec.priority is Priority.REGULAR and spec.spot_fallback is True
    assert spec.on_success is Cleanup.DELETE and spec.on_failure is Cleanup.DELETE
    assert spec.job_id is None and spec.notify_url is None


def test_full_spec_round_trips_and_merges_task_overrides() -> None:
    data = {
        **BASE, "jobId": "nightly-2026.11", "cpu": 2, "memoryGb": 3.5, "env": {"MODE": "fast", "LEVEL": "1"},
        "secureEnv": {"TOKEN": "s3cret"}, "maxAttempts": 5, "taskTimeoutSeconds": 60, "jobTimeoutSeconds": 600,
        "priority": "Spot", "spotFallback": False, "onSuccess": "stop", "onFailure": "stop",
        "notifyUrl": "https://hooks.example.com/done",
        "tasks": [{"id": "a", "env": {"LEVEL": "2"}}, {"id": "b", "command": ["sh", "-c", "true"]}],
    }  # fmt: skip
    spec = parse_job_spec(data)
    assert spec.task_env(spec.tasks[0]) == {"MODE": "fast", "LEVEL": "2"}
    assert spec.task_command(spec.tasks[0]) == ("python3", "main.py")
    assert spec.task_command(spec.tasks[1]) == ("sh", "-c", "true")
    assert JobSpec.from_dict(spec.to_dict()) == spec
    assert parse_job_spec({k: v for k, v in spec.to_dict().items() if v is not None} | {"tasks": data["tasks"]}) == spec


def test_fingerprint_ignores_how_the_same_request_is_written() -> None:
    by_count = parse_job_spec({**BASE, "taskCount": 3})
    explicit = parse_job_spec({"command": BASE["command"], "tasks": [{"id": "0"}, {"id": "1"}, {"id": "2"}],
                               "image": BASE["image"], "cpu": 1.0})  # fmt: skip
    assert by_count.fingerprint() == explicit.fingerprint()
    assert parse_job_spec({**BASE, "taskCount": 4}).fingerprint() != by_count.fingerprint()


def test_all_errors_are_reported_at_once_with_paths() -> None:
    errors = errors_of({
        "image": "Bad Image!", "cpu": 9, "memoryGb": float("nan"), "maxAttempts": True, "priority": "Cheap",
        "onSuccess": "keep", "notifyUrl": "ftp://x", "surprise": 1,
        "env": {"BATCH_ATTEMPT": "1", "_bad": "x", "OK": 3},
        "tasks": [{"id": "a/b"}, {"id": "x", "extra": 1}, {"id": "x"}],
    })  # fmt: skip
    assert set(errors) >= {
        "image", "cpu", "memoryGb", "maxAttempts", "priority", "onSuccess", "notifyUrl", "surprise",
        "env.BATCH_ATTEMPT", "env._bad", "env.OK", "tasks[0].id", "tasks[1].extra", "tasks[2].id",
    }  # fmt: skip
    assert "reserved" in errors["env.BATCH_ATTEMPT"]
    assert "duplicates tasks[1].id" in errors["tasks[2].id"]


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"taskCount": MAX_TASKS + 1}, "taskCount"),
        ({"tasks": [{"id": str(i)} for i in range(MAX_TASKS + 1)]}, "tasks"),
        ({"tasks": [], "taskCount": 2}, "tasks"),
        ({"taskCount": 0}, "taskCount"),
        ({"command": ["", "x"], "taskCount": 1}, "command[0]"),
        ({"command": "python3 main.py", "taskCount": 1}, "command"),
        ({"cpu": 0.005, "taskCount": 1}, "cpu"),
        ({"cpu": 1.234, "taskCount": 1}, "cpu"),
        ({"taskTimeoutSeconds": 0, "taskCount": 1}, "taskTimeoutSeconds"),
        ({"jobTimeoutSeconds": 10**9, "taskCount": 1}, "jobTimeoutSeconds"),
        ({"env": {"A": "x"}, "secureEnv": {"A": "y"}, "taskCount": 1}, "secureEnv.A"),
        ({"jobId": "has space", "taskCount": 1}, "jobId"),
        ({"tasks": [{"id": "ok", "env": "x"}]}, "tasks[0].env"),
        ({"spotFallback": "yes", "taskCount": 1}, "spotFallback"),
    ],
)
def test_limits(change: dict[str, Any], path: str) -> None:
    assert path in errors_of({**BASE, **change})


@pytest.mark.parametrize(
    "image",
    ["python", "python:3.12", "docker.io/library/python:3.12-slim", "localhost:5000/a/b_c__d:tag",
     "myacr.azurecr.io/x@sha256:" + "a" * 64],
)  # fmt: skip
def test_valid_image_references(image: str) -> None:
    assert parse_job_spec({**BASE, "image": image, "taskCount": 1}).image == image


@pytest.mark.parametrize("image", ["", "UPPER/case", "a//b", "name:", "x@sha256:short", "-lead", 5])
def test_invalid_image_references(image: object) -> None:
    assert "image" in errors_of({**BASE, "image": image, "taskCount": 1})


def test_non_object_body_is_refused() -> None:
    assert errors_of([1, 2]) == {"body": "must be a JSON object describing the job"}


def test_the_example_job_specs_are_valid() -> None:
    import json
    from pathlib import Path

    # images.json is aciemu's image catalog for `acibatch up`, not a job spec.
    examples = sorted(p for p in (Path(__file__).parents[2] / "examples").glob("*.json") if p.name != "images.json")
    assert len(examples) >= 3
    for path in examples:
        # Valid where blob storage is set up (files-job.json moves files; the others need none).
        assert parse_job_spec(json.loads(path.read_text()), storage_enabled=True).tasks


# Any value a JSON parser can produce, including integers too large for a float and the infinities that
# Python's json reads from literals such as 1e400.
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.sampled_from([10**400, -(10**400)]) | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
JOB_FIELD_NAMES = sorted(JOB_FIELDS)


@pytest.mark.parametrize("field", ["priority", "onSuccess", "onFailure"])
@pytest.mark.parametrize("value", [{}, {"a": 1}, [], ["Spot"], None, 1, True, "spot"])
def test_enum_fields_of_the_wrong_type_name_the_field_and_the_allowed_values(field: str, value: object) -> None:
    message = errors_of({**BASE, "taskCount": 1, field: value})[field]
    allowed = "'Regular' or 'Spot'" if field == "priority" else "'delete' or 'stop'"
    assert message.startswith(f"must be the string {allowed}, not ")


@pytest.mark.parametrize("field", ["cpu", "memoryGb", "taskCount", "maxAttempts"])
def test_integers_too_large_for_a_float_are_out_of_range_not_a_crash(field: str) -> None:
    assert field in errors_of({**BASE, "taskCount": 1, field: 10**400})


@pytest.mark.parametrize("url", ["http://[x", "https://[::1", {"url": "https://a.example"}, ["https://a.example"]])
def test_a_malformed_notify_url_is_a_field_error(url: object) -> None:
    assert "notifyUrl" in errors_of({**BASE, "taskCount": 1, "notifyUrl": url})


@pytest.mark.parametrize("value", ["job\n", "a" * 63 + "\n"])
def test_a_trailing_newline_is_not_part_of_a_valid_id_or_name(value: str) -> None:
    errors = errors_of({**BASE, "jobId": value, "env": {"NAME\n": "x"}, "image": "python\n", "taskCount": 1})
    assert {"jobId", "env.NAME\n", "image"} <= set(errors)


@settings(max_examples=400, deadline=None, database=None)
@given(
    st.dictionaries(st.sampled_from(JOB_FIELD_NAMES), JSON_VALUES)
    | st.dictionaries(st.sampled_from(JOB_FIELD_NAMES), JSON_VALUES).map(
        lambda spec: {**spec, "tasks": [spec.get("env"), {"id": spec.get("jobId"), "env": spec.get("command")}]}
    )
    | JSON_VALUES
)
def test_any_json_is_either_a_spec_or_a_list_of_field_errors(data: Any) -> None:
    try:
        spec = parse_job_spec(data)
    except JobSpecInvalid as invalid:
        assert invalid.errors
        for error in invalid.errors:
            # Every error names a field of the body (or the body itself) and says what to do.
            root = error.path.split(".", 1)[0].split("[", 1)[0]
            assert root in JOB_FIELDS | {"body"} or (isinstance(data, dict) and error.path in data), error
            assert error.message
    else:
        assert JobSpec.from_dict(spec.to_dict()) == spec
