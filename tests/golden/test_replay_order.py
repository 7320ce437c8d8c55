"""The golden replay's order check (`tests.golden.replay`, `Replay.order_divergence`) on a small orchestrator built
here: a change that keeps every action's sequence number and name but produces an action only after an event the
recorded history delivered later. The check by sequence number alone passes such a change; DTFx does not, because
the extension's out-of-process shim awaits each action in order and has not got to the action when the history
says it was scheduled."""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import azure.durable_functions as df
import pytest

from tests.golden import replay as golden
from tests.orchestrators import harness
from tests.orchestrators.harness import Orchestration

PROBE = "order_probe"
Probe = Callable[[df.DurableOrchestrationContext], Generator[Any, Any, Any]]


def calls_then_waits(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    yield context.call_activity("work", 1)
    return (yield context.wait_for_external_event("go"))


def waits_then_calls(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    go = yield context.wait_for_external_event("go")
    yield context.call_activity("work", 1)
    return go


def calls_and_waits_together(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    # Both are yielded before anything is awaited: the shim invokes both at once, so the call is there in time.
    _, go = yield context.task_all([context.call_activity("work", 1), context.wait_for_external_event("go")])
    return go


def handles(code: Probe) -> Callable[[], dict[str, Any]]:
    return lambda: {PROBE: df.Orchestrator.create(code)}


def history_of(code: Probe, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """What `code` records: the call scheduled in the first episode, its result, then the event."""
    monkeypatch.setattr(harness, "orchestrator_handles", handles(code))
    h = Orchestration(PROBE, None, "probe")
    first = h.run()
    h.activity_completed(first.new[0], "done")
    h.run()
    h.event("go", "yes", through_python_client=False)
    assert h.run().is_done
    return {"instance": h.instance_id, "orchestrator": PROBE, "history": h.history}


def replayed_by(code: Probe, generation: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> golden.Replay:
    monkeypatch.setattr(golden, "orchestrator_handles", handles(code))
    return golden.replay(generation)


def test_a_code_that_schedules_the_same_action_only_after_a_later_event_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    generation = history_of(calls_then_waits, monkeypatch)
    result = replayed_by(waits_then_calls, generation, monkeypatch)
    # By sequence number alone the new code matches: its one numbered action is the same call at number 0.
    assert result.divergence is None
    assert [(step.number, step.mismatch()) for step in result.steps] == [(0, None)]
    late = result.order_divergence
    assert late is not None and late.episode == 1
    assert result.verdict is not None
    assert "in episode 1" in result.verdict and "external event 'go'" in result.verdict


@pytest.mark.parametrize("code", [calls_then_waits, calls_and_waits_together], ids=["same code", "yielded together"])
def test_a_code_that_has_the_action_ready_when_its_episode_replays_passes(
    code: Probe, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = replayed_by(code, history_of(calls_then_waits, monkeypatch), monkeypatch)
    assert result.verdict is None
    assert [point.numbered >= point.scheduled for point in result.reached] == [True] * 3
