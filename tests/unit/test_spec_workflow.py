"""Job spec validation of dependencies, exit conditions, onTaskFailure and jobPriority: every error at once."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acibatch.dag import MAX_EDGES
from acibatch.spec import JobSpec, JobSpecInvalid, TaskFailureAction, parse_job_spec

IMAGE = "registry.example.com/team/app:1"


def errors(data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(JobSpecInvalid) as raised:
        parse_job_spec(data)
    return {error.path: error.message for error in raised.value.errors}


def test_a_diamond_parses_and_round_trips() -> None:
    spec = parse_job_spec(
        {
            "image": IMAGE,
            "command": ["run"],
            "tasks": [
                {"id": "A"},
                {"id": "B", "dependsOn": {"taskIds": ["A"]}},
                {"id": "C", "dependsOn": {"taskIds": ["A"]}},
                {"id": "D", "dependsOn": {"taskIds": ["B", "C"], "condition": "allCompleted"}},
            ],
            "onTaskFailure": "terminateJob",
            "jobPriority": 5,
        }
    )
    assert spec.is_workflow and spec.graph().upstream == ((), (0,), (0,), (1, 2))
    again = JobSpec.from_dict(spec.to_dict())
    assert again == spec and again.fingerprint() == spec.fingerprint()
    assert (again.on_task_failure, again.job_priority) == (TaskFailureAction.TERMINATE_JOB, 5)


def test_a_job_without_the_new_fields_keeps_its_canonical_form() -> None:
    spec = parse_job_spec({"image": IMAGE, "command": ["run"], "taskCount": 2})
    assert not spec.is_workflow
    assert not {"dependsOn", "exitConditions", "onTaskFailure", "jobPriority"} & set(spec.to_dict())


def test_a_cycle_and_an_unknown_id_are_both_named_with_other_errors() -> None:
    found = errors(
        {
            "image": "NOT AN IMAGE",
            "command": ["run"],
            "tasks": [
                {"id": "a", "dependsOn": {"taskIds": ["c"]}},
                {"id": "b", "dependsOn": {"taskIds": ["a", "ghost"]}},
                {"id": "c", "dependsOn": {"taskIds": ["b"]}},
            ],
        }
    )
    assert "image" in found
    assert found["tasks[1].dependsOn.taskIds"] == "unknown task id 'ghost'"
    cyclic = errors(
        {
            "image": IMAGE,
            "tasks": [
                {"id": "a", "dependsOn": {"taskIds": ["c"]}},
                {"id": "b", "dependsOn": {"taskIds": ["a"]}},
                {"id": "c", "dependsOn": {"taskIds": ["b"]}},
            ],
        }
    )
    (message,) = cyclic.values()
    assert message.startswith("dependency cycle: ") and {"a", "b", "c"} <= set(message.split(" "))


def test_array_sugar_on_a_task_count_job_and_a_ten_thousand_task_chain() -> None:
    spec = parse_job_spec(
        {"image": IMAGE, "command": ["run"], "taskCount": 10_000, "dependsOn": {"array": "job", "mode": "sequential"}}
    )
    graph = spec.graph()
    assert graph.edges == 9_999 and graph.upstream[9_999] == (9_998,)
    assert len(str(spec.to_dict()["dependsOn"])) < 60  # stored unexpanded


def test_every_new_field_error_at_once() -> None:
    found = errors(
        {
            "image": IMAGE,
            "command": ["run"],
            "tasks": [{"id": "x", "group": "bad group", "exitConditions": {"default": {"action": "maybe"}}}],
            "dependsOn": {"taskIds": 3},
            "onTaskFailure": "explode",
            "jobPriority": 5000,
            "exitConditions": [],
        }
    )
    assert set(found) == {
        "tasks[0].group",
        "tasks[0].exitConditions.default.action",
        "dependsOn.taskIds",
        "onTaskFailure",
        "jobPriority",
        "exitConditions",
    }
    assert "-1000 to 1000" in found["jobPriority"]


def test_too_many_edges_are_refused_with_the_limit() -> None:
    tasks = [{"id": str(i)} for i in range(100)]
    tasks += [{"id": f"r{i}", "dependsOn": {"taskIdRanges": [{"start": 0, "end": 99}]}} for i in range(1_001)]
    found = errors({"image": IMAGE, "command": ["run"], "tasks": tasks})
    assert found == {"tasks": f"dependsOn names 100100 upstream tasks in all; at most {MAX_EDGES} allowed"}


def test_ranges_need_integer_ids() -> None:
    found = errors(
        {
            "image": IMAGE,
            "command": ["run"],
            "tasks": [{"id": "a"}, {"id": "b", "dependsOn": {"taskIdRanges": [{"start": 0, "end": 0}]}}],
        }
    )
    assert "non-integer ids" in found["tasks[1].dependsOn.taskIdRanges[0]"]


def test_a_terminating_exit_condition_makes_a_workflow() -> None:
    spec = parse_job_spec(
        {
            "image": IMAGE,
            "command": ["run"],
            "taskCount": 3,
            "exitConditions": {"exitCodes": [{"code": 9, "exitOptions": {"action": "fail", "jobAction": "terminate"}}]},
        }
    )
    assert spec.is_workflow and not spec.has_dependencies


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=3),
    max_leaves=8,
)
KEYS = st.sampled_from(
    ["taskIds", "taskIdRanges", "array", "mode", "condition", "exitCodes", "exitCodeRanges", "default", "action"]
)


@settings(max_examples=300, deadline=None)
@given(
    depends_on=st.one_of(JSON, st.dictionaries(KEYS, JSON, max_size=4)),
    exit_conditions=st.one_of(JSON, st.dictionaries(KEYS, JSON, max_size=4)),
    where=st.sampled_from(["job", "task"]),
)
def test_any_json_in_the_new_fields_is_a_spec_error_never_a_crash(
    depends_on: Any, exit_conditions: Any, where: str
) -> None:
    data: dict[str, Any] = {"image": IMAGE, "command": ["run"], "tasks": [{"id": "0"}, {"id": "1"}]}
    target = data if where == "job" else data["tasks"][1]
    target.update({"dependsOn": depends_on, "exitConditions": exit_conditions})
    try:
        parsed = parse_job_spec(data)
    except JobSpecInvalid as invalid:
        assert invalid.errors and all(error.message for error in invalid.errors)
    else:
        assert JobSpec.from_dict(parsed.to_dict()) == parsed
