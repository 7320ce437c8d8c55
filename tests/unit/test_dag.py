"""Task dependencies: dependsOn checks at submit, and the readiness state that releases and skips tasks."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acibatch.dag import (
    MAX_EDGES,
    ArrayMode,
    Condition,
    DependsOn,
    GraphInvalid,
    Outcome,
    Readiness,
    TaskNode,
    build_graph,
    outcome_of,
    parse_depends_on,
)


def nodes(*specs: tuple[str, list[str]], condition: Condition = Condition.ALL_SUCCEEDED) -> list[TaskNode]:
    return [
        TaskNode(name, depends_on=DependsOn(task_ids=tuple(ups), condition=condition) if ups else None)
        for name, ups in specs
    ]


def diamond(condition: Condition = Condition.ALL_SUCCEEDED) -> Readiness:
    graph = build_graph(nodes(("A", []), ("B", ["A"]), ("C", ["A"]), ("D", ["B", "C"]), condition=condition))
    return Readiness.start(graph)


def errors_of(task_nodes: list[TaskNode]) -> list[tuple[str, str]]:
    with pytest.raises(GraphInvalid) as raised:
        build_graph(task_nodes)
    return raised.value.errors


# -- parsing and checks ---------------------------------------------------------------------------------------


def test_parse_reports_every_shape_problem_with_its_path() -> None:
    errors: list[tuple[str, str]] = []
    value = {"taskIds": "a", "taskIdRanges": [{"start": 3, "end": 1}, {"start": "0"}], "condition": "most", "x": 1}
    assert parse_depends_on(value, "tasks[2].dependsOn", errors) is None
    paths = [path for path, _ in errors]
    assert paths == [
        "tasks[2].dependsOn.x",
        "tasks[2].dependsOn.taskIds",
        "tasks[2].dependsOn.taskIdRanges[0]",
        "tasks[2].dependsOn.taskIdRanges[1]",
        "tasks[2].dependsOn.condition",
    ]


def test_parse_refuses_an_empty_dependency_and_mixing_array_with_ids() -> None:
    errors: list[tuple[str, str]] = []
    parse_depends_on({}, "p", errors)
    parse_depends_on({"array": "map", "mode": "nToN", "taskIds": ["a"]}, "q", errors)
    parse_depends_on({"array": "map", "mode": "fanOut"}, "r", errors)
    assert [path for path, _ in errors] == ["p", "q", "r.mode"]


def test_unknown_ids_self_dependencies_and_ranges_on_text_ids_are_all_reported() -> None:
    problems = errors_of(
        [
            TaskNode("a", depends_on=DependsOn(task_ids=("a", "ghost"))),
            TaskNode("b", depends_on=DependsOn(ranges=((0, 1),))),
        ]
    )
    assert ("tasks[0].dependsOn.taskIds", "task 'a' depends on itself") in problems
    assert ("tasks[0].dependsOn.taskIds", "unknown task id 'ghost'") in problems
    assert any("non-integer ids" in message for path, message in problems if path.endswith("taskIdRanges[0]"))


def test_a_cycle_is_refused_and_named() -> None:
    problems = errors_of(nodes(("a", []), ("b", ["a", "d"]), ("c", ["b"]), ("d", ["c"])))
    assert len(problems) == 1
    path, message = problems[0]
    assert message.startswith("dependency cycle: ")
    named = message.removeprefix("dependency cycle: ").split(" -> ")
    assert named[0] == named[-1] and set(named) == {"b", "c", "d"}
    assert path.startswith("tasks[") and path.endswith("].dependsOn")


def test_ranges_over_integer_ids_are_inclusive_and_unknown_ends_are_named() -> None:
    task_nodes = [TaskNode(str(i)) for i in range(5)] + [TaskNode("5", depends_on=DependsOn(ranges=((1, 3),)))]
    assert build_graph(task_nodes).upstream[5] == (1, 2, 3)
    bad = [*task_nodes[:5], TaskNode("5", depends_on=DependsOn(ranges=((2, 9),)))]
    assert ("tasks[5].dependsOn.taskIdRanges[0]", "unknown task id '9' (ids run 0..5)") in errors_of(bad)


def test_the_edge_limit_is_checked_before_anything_is_expanded() -> None:
    huge = DependsOn(ranges=((0, 10**9),))
    started = time.monotonic()
    problems = errors_of([TaskNode(str(i), depends_on=huge if i == 0 else None) for i in range(3)])
    assert time.monotonic() - started < 1.0
    assert problems == [("tasks", f"dependsOn names {10**9 + 1} upstream tasks in all; at most {MAX_EDGES} allowed")]


def test_array_sugar_nton_and_sequential() -> None:
    mapped = [TaskNode(f"m{i}", group="map") for i in range(3)]
    second = [
        TaskNode(f"s{i}", group="second", depends_on=DependsOn(array="map", mode=ArrayMode.N_TO_N)) for i in range(3)
    ]
    graph = build_graph([*mapped, *second])
    assert graph.upstream[3:] == ((0,), (1,), (2,))
    sequential = DependsOn(array="job", mode=ArrayMode.SEQUENTIAL)
    chain = build_graph([TaskNode(str(i), depends_on=sequential) for i in range(4)])
    assert chain.upstream == ((), (0,), (1,), (2,))
    uneven = [*mapped, *second[:2]]
    assert any("equal size" in message for _, message in errors_of(uneven))
    own = [TaskNode("x", group="g", depends_on=DependsOn(array="g", mode=ArrayMode.N_TO_N))]
    assert any("another group" in message for _, message in errors_of(own))
    missing = [TaskNode("x", depends_on=DependsOn(array="nope", mode=ArrayMode.N_TO_N))]
    assert errors_of(missing) == [("tasks[0].dependsOn.array", "unknown task group 'nope'")]


def test_a_ten_thousand_task_chain_builds_without_recursion() -> None:
    chain = [TaskNode(str(i), depends_on=DependsOn(array="job", mode=ArrayMode.SEQUENTIAL)) for i in range(10_000)]
    graph = build_graph(chain)
    assert graph.edges == 9_999 and graph.roots() == [0]


# -- readiness ------------------------------------------------------------------------------------------------


def test_diamond_releases_in_order() -> None:
    state = diamond()
    assert state.ready() == [0]
    state.release(0)
    assert state.complete(0, Outcome.SUCCEEDED) == ([1, 2], [])
    assert state.complete(1, Outcome.SUCCEEDED) == ([], [])
    assert state.blocked_by(3) == ["C"]
    assert state.complete(2, Outcome.SUCCEEDED) == ([3], [])
    assert state.complete(3, Outcome.SUCCEEDED) == ([], [])
    assert state.finished()


def test_a_failure_skips_its_dependents_with_reasons_and_the_skip_cascades() -> None:
    graph = build_graph(nodes(("a", []), ("b", ["a"]), ("c", ["b"]), ("d", ["c"])))
    state = Readiness.start(graph)
    state.release(0)
    assert state.complete(0, Outcome.SUCCEEDED) == ([1], [])
    ready, skipped = state.complete(1, outcome_of("Failed", None))
    assert ready == [] and skipped == [(2, "upstream b Failed"), (3, "upstream c Skipped")]
    assert state.finished() and state.letters == "Sfkk"


def test_dependency_actions_override_the_default() -> None:
    state = diamond()
    state.complete(0, outcome_of("Succeeded", "block"))
    assert state.letters == "skkk"
    state = diamond()
    assert state.complete(0, outcome_of("Failed", "satisfy")) == ([1, 2], [])


def test_any_succeeded_runs_on_the_first_success_and_is_skipped_when_none_can() -> None:
    state = diamond(Condition.ANY_SUCCEEDED)
    state.complete(0, Outcome.SUCCEEDED)
    assert state.complete(1, Outcome.SUCCEEDED) == ([3], [])
    state = diamond(Condition.ANY_SUCCEEDED)
    state.complete(0, Outcome.SUCCEEDED)
    assert state.complete(1, Outcome.FAILED) == ([], [])
    assert state.complete(2, Outcome.CANCELLED) == ([], [(3, "upstream B Failed")])


def test_all_completed_runs_whatever_the_outcomes() -> None:
    state = diamond(Condition.ALL_COMPLETED)
    state.complete(0, Outcome.FAILED)  # B and C are allCompleted too: they run after a failed A
    assert state.letters == "frr."
    state.complete(1, Outcome.FAILED)
    assert state.complete(2, Outcome.SUCCEEDED) == ([3], [])


def test_a_repeated_report_changes_nothing() -> None:
    state = diamond()
    state.complete(0, Outcome.SUCCEEDED)
    before = (state.letters, list(state.ended), list(state.satisfied))
    assert state.complete(0, Outcome.FAILED) == ([], [])
    assert (state.letters, state.ended, state.satisfied) == before


def test_stopping_ends_every_pending_task() -> None:
    state = diamond()
    state.release(0)
    assert state.skip_all_pending(Outcome.CANCELLED) == [1, 2, 3]
    assert state.complete(0, Outcome.SUCCEEDED) == ([], [])
    assert state.finished()


@st.composite
def dags(draw: st.DrawFn) -> tuple[list[TaskNode], list[Outcome]]:
    size = draw(st.integers(1, 12))
    task_nodes = []
    for index in range(size):
        ups = draw(st.lists(st.integers(0, index - 1), max_size=3, unique=True)) if index else []
        condition = draw(st.sampled_from(list(Condition)))
        depends = DependsOn(task_ids=tuple(str(up) for up in ups), condition=condition) if ups else None
        task_nodes.append(TaskNode(str(index), depends_on=depends))
    ran = [Outcome.SUCCEEDED, Outcome.SUCCEEDED_BLOCKS, Outcome.FAILED, Outcome.FAILED_SATISFIES, Outcome.CANCELLED]
    outcomes = draw(st.lists(st.sampled_from(ran), min_size=size, max_size=size))
    return task_nodes, outcomes


@settings(max_examples=300, deadline=None)
@given(case=dags(), order=st.randoms(use_true_random=False))
def test_every_task_ends_once_and_runs_only_when_its_condition_holds(case, order) -> None:  # type: ignore[no-untyped-def]
    task_nodes, outcomes = case
    graph = build_graph(task_nodes)
    state = Readiness.start(graph)
    running = state.ready()
    for index in running:
        state.release(index)
    ran: set[int] = set()
    while running:
        index = running.pop(order.randrange(len(running)))
        # It runs only once its condition holds over what its upstream tasks ended with.
        ups = [state.outcomes[up] for up in graph.upstream[index]]
        if ups:
            condition = graph.conditions[index]
            assert all(up.ended for up in ups) or condition is Condition.ANY_SUCCEEDED
            if condition is Condition.ALL_SUCCEEDED:
                assert all(up.satisfies for up in ups)
            if condition is Condition.ANY_SUCCEEDED:
                assert any(up.satisfies for up in ups)
        ran.add(index)
        ready, skipped = state.complete(index, outcomes[index])
        assert not set(ready) & ran
        running.extend(ready)
        for item, reason in skipped:
            assert reason.startswith("upstream ")
            assert item not in ran
        # The counters kept step by step are the ones rebuilt from the letters (what continue-as-new carries).
        rebuilt = Readiness.from_letters(graph, state.letters)
        assert (rebuilt.ended, rebuilt.satisfied) == (state.ended, state.satisfied)
    assert state.finished()
    for index in range(graph.size):
        if index not in ran:
            assert state.outcomes[index] is Outcome.SKIPPED
