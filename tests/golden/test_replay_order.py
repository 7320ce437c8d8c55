"""The golden replay's order check (`tests.golden.replay`, `Replay.order_divergence`) on a small orchestrator built
here: a change that keeps every action's sequence number and name but produces an action only after an event the
recorded history delivered later. The check by sequence number alone passes such a change; DTFx does not, because
the extension's out-of-process shim awaits each action in order and has not got to the action when the history
says it was scheduled."""

from __future__ import annotations

from collections.abc import Callable, Generator
from datetime import timedelta
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


def races_with_the_call_then_cancels(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    timer = context.create_timer(context.current_utc_datetime + timedelta(minutes=5))
    race = context.task_any([timer, context.wait_for_external_event("go")])
    yield context.task_all([race, context.call_activity("work", 1)])
    timer.cancel()
    return "done"


def races_then_cancels_then_calls(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    timer = context.create_timer(context.current_utc_datetime + timedelta(minutes=5))
    yield context.task_any([timer, context.wait_for_external_event("go")])
    timer.cancel()
    yield context.call_activity("work", 1)
    return "done"


def recorded_race(monkeypatch: pytest.MonkeyPatch, event_first: bool) -> dict[str, Any]:
    """What `races_with_the_call_then_cancels` records: the timer and the call in the first episode, then 'go' and the
    call's result in two more episodes, in either order."""
    monkeypatch.setattr(harness, "orchestrator_handles", handles(races_with_the_call_then_cancels))
    h = Orchestration(PROBE, None, "probe")
    first = h.run()
    assert [s.type.name for s in first.new if s.id is not None] == ["CREATE_TIMER", "CALL_ACTIVITY"]
    for happens in ["go", "work"] if event_first else ["work", "go"]:
        if happens == "go":
            h.event("go", "now", through_python_client=False)
        else:
            h.activity_completed("work", "done")
        h.run()
    assert h.last is not None and h.last.is_done
    return {"instance": h.instance_id, "orchestrator": PROBE, "history": h.history}


def test_a_timer_the_code_cancels_later_does_not_let_an_earlier_episode_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    # 'work' ends in the second episode and 'go' comes in the third. Deployed to after the first episode, the new code
    # runs the second: it still races the timer (not cancelled yet) when DTFx replays the first episode's call. The
    # final episode's actions have the timer cancelled, which the shim counts done at once: they alone would pass it.
    generation = recorded_race(monkeypatch, event_first=False)
    result = replayed_by(races_then_cancels_then_calls, generation, monkeypatch)
    assert result.divergence is None  # the same numbers and names
    late = result.order_divergence
    assert late is not None and late.episode == 1, result.reached
    assert "external event 'go'" in str(result.verdict)
    assert replayed_by(races_with_the_call_then_cancels, generation, monkeypatch).verdict is None


def test_a_change_is_not_refused_when_every_episode_after_the_call_has_the_call_ready(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 'go' comes in the second episode: whenever the new code runs, the race is won and the timer cancelled, so the
    # shim gets to the call in time. Azure accepts this change, and so must the check.
    generation = recorded_race(monkeypatch, event_first=True)
    assert replayed_by(races_then_cancels_then_calls, generation, monkeypatch).verdict is None


def retries_out_then_calls(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    options = df.RetryOptions(first_retry_interval_in_milliseconds=1000, max_number_of_attempts=2)
    try:
        outcome = yield context.call_activity_with_retry("flaky", options, 1)
    except Exception:
        outcome = "gave up"
    yield context.call_activity("after", outcome)
    return "done"


def test_an_action_that_runs_out_of_retries_lets_the_shim_go_on_at_its_last_timer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # DTFx's retry interceptor: an attempt fails, a timer, the next attempt, it fails, a last timer; only when that
    # fires does the action fail and the code go on. The shim must see the action end there (`RetryKeys`).
    monkeypatch.setattr(harness, "orchestrator_handles", handles(retries_out_then_calls))
    h = Orchestration(PROBE, None, "probe")
    h.run()
    for _ in range(2):
        h.activity_failed("flaky", "boom")
        h.run()
        h.timer_fired()
        h.run()
    h.activity_completed("after", "ok")
    assert h.run().is_done
    generation = {"instance": h.instance_id, "orchestrator": PROBE, "history": h.history}
    result = replayed_by(retries_out_then_calls, generation, monkeypatch)
    assert result.verdict is None, result.verdict
    assert len(result.host_events) == 3 and [step.number for step in result.steps] == [0, 4]
    # Without the last timer, the shim would still wait for the retried action when 'after' was scheduled.
    monkeypatch.setattr(golden._Retry, "keys", property(lambda retry: golden.shim.RetryKeys(retry.task_id, None)))
    late = replayed_by(retries_out_then_calls, generation, monkeypatch).order_divergence
    assert late is not None and late.episode == 5  # the episode that scheduled 'after'
    assert late.numbered == 1 and late.scheduled == 2
